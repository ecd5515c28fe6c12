/**
 * Leadership handoffs the leader starts by itself, and the choice of a transfer target.
 *
 *  - A leader that may not lead (a witness or never-promote voter, elected as a relay or marked so
 *    by a configuration change while leading) hands over at once, in every mode: it starts a
 *    transfer as it takes office and again whenever one ends without success, so it always has one
 *    under way (an invariant `checkInvariants` asserts). Meanwhile it refuses proposals
 *    (`LEADERSHIP_TRANSFER`) and a witness serves no read of its own, so it never serves a client;
 *    it still replicates, which is what brings the new leader up to date, and commits its term's
 *    no-op, which commits the entries it relayed.
 *  - Priority (only when failover is automatic: mode auto, not paused): a leader that has committed
 *    in its term and sees a voter that may lead, with a higher priority, holding every committed
 *    entry and heard from within an election timeout, transfers to it (the best such voter). The
 *    transfer itself brings the target fully up to date before `timeoutNow` (thesis §3.10) and the
 *    target wins only through the §5.4.1 vote rule, so a priority transfer loses nothing committed.
 *    A failed one is not retried for `priorityTransferBackoffTimeouts` election timeouts.
 *
 * Target choice (`bestTransferTarget`): among voters that may lead, first those with the fewest
 * transfers from this leader in this term that timed out, then those that just voted for this
 * leader (known alive when it takes office, before any follower answered), then the most caught
 * up, then those heard from within an election timeout, then higher priority, then the leader's own
 * zone, then the smaller id. The first rule matters when a target cannot campaign: a voter whose
 * host holds its candidacy (damaged storage waiting for a leader's snapshot, which a witness
 * cannot send) ignores `timeoutNow`. Ranked first by its log alone, it was chosen again after
 * every timeout, and a witness leader kept office with writes refused (found by the simulator,
 * seed 60473).
 */
import { assert } from "../lib/assert.ts";
import type { NodeId } from "../types/ids.ts";
import { failoverIsAutomatic, mayLead, memberAttributesOf } from "./cluster-config.ts";
import { type CoreState, progressOf, selfIsVoter, type TransferReason } from "./core-state.ts";
import type { EffectsBuilder } from "./effects.ts";
import { startTransfer } from "./transfer.ts";

type Target = {
  readonly id: NodeId;
  readonly transfersFailed: number;
  readonly votedForUs: boolean;
  readonly matchIndex: number;
  readonly heard: boolean;
  readonly priority: number;
  readonly sameZone: boolean;
};

function compareTargets(a: Target, b: Target): number {
  if (a.transfersFailed !== b.transfersFailed) return a.transfersFailed - b.transfersFailed;
  if (a.votedForUs !== b.votedForUs) return a.votedForUs ? -1 : 1;
  if (a.matchIndex !== b.matchIndex) return b.matchIndex - a.matchIndex;
  if (a.heard !== b.heard) return a.heard ? -1 : 1;
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.sameZone !== b.sameZone) return a.sameZone ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The voters other than this leader that may lead, as transfer targets. */
function targets(s: CoreState, electedBy: readonly NodeId[]): Target[] {
  assert(s.role === "leader", "only a leader picks a transfer target");
  const config = s.log.config;
  const ownZone = memberAttributesOf(config, s.config.id).zone;
  return config.voters
    .filter((id) => id !== s.config.id && mayLead(config, id))
    .map((id) => {
      const progress = progressOf(s, id);
      const { priority, zone } = memberAttributesOf(config, id);
      return {
        id,
        transfersFailed: progress.transfersFailed,
        votedForUs: electedBy.includes(id),
        matchIndex: progress.matchIndex,
        heard: s.nowTick - progress.lastHeardTick <= s.config.electionTimeoutTicks,
        priority,
        sameZone: ownZone !== null && zone === ownZone,
      };
    });
}

/** The best voter to hand leadership to (see the module comment), or null when no other voter may lead. */
export function bestTransferTarget(s: CoreState, electedBy: readonly NodeId[] = []): NodeId | null {
  return targets(s, electedBy).sort(compareTargets)[0]?.id ?? null;
}

/** A caught-up voter that may lead with a higher priority than this leader's, the best of them; or null. */
function priorityTarget(s: CoreState): NodeId | null {
  const own = memberAttributesOf(s.log.config, s.config.id).priority;
  const eligible = targets(s, []).filter((t) => t.priority > own && t.heard && t.matchIndex >= s.commitIndex);
  // Highest priority first; among equals the usual order.
  eligible.sort((a, b) => b.priority - a.priority || compareTargets(a, b));
  return eligible[0]?.id ?? null;
}

function handOff(
  s: CoreState,
  out: EffectsBuilder,
  target: NodeId,
  reason: Exclude<TransferReason, "operator">,
): void {
  out.event({ type: "handoff-started", node: s.config.id, term: s.term, target, reason });
  startTransfer(s, out, target, reason);
  assert(s.transfer?.target === target, "the handoff started");
}

/**
 * Starts the handoff this leader owes, if any: called when it takes office (with the voters that
 * elected it), after each leader tick, and after it appends a failover change.
 */
export function maybeHandOff(s: CoreState, out: EffectsBuilder, electedBy: readonly NodeId[] = []): void {
  if (s.role !== "leader" || s.transfer !== null || !selfIsVoter(s)) return;
  const config = s.log.config;
  if (!mayLead(config, s.config.id) || s.candidacyHeld) {
    if (s.config.unsafeTestBugs.ineligibleLeaderKeepsOffice === true) return;
    const target = bestTransferTarget(s, electedBy);
    assert(target !== null, "a valid configuration has a voter that may lead");
    handOff(s, out, target, "not-eligible");
    return;
  }
  if (!failoverIsAutomatic(config) || s.nowTick < s.failover.priorityTransferNotBeforeTick) return;
  if (s.log.termAt(s.commitIndex) !== s.term) return;
  const target = priorityTarget(s);
  if (target !== null) handOff(s, out, target, "priority");
}

/** An operator's switchover: to `target`, or to the best voter that may lead. */
export function handleTransferLeadership(
  s: CoreState,
  out: EffectsBuilder,
  target: NodeId | undefined,
): void {
  if (target !== undefined) {
    startTransfer(s, out, target);
    return;
  }
  const node = s.config.id;
  if (s.role !== "leader") {
    out.event({ type: "transfer-rejected", node, term: s.term, target: node, reason: "NOT_LEADER" });
    return;
  }
  const best = bestTransferTarget(s);
  if (best === null) {
    out.event({ type: "transfer-rejected", node, term: s.term, target: node, reason: "NO_TARGET" });
    return;
  }
  startTransfer(s, out, best);
}
