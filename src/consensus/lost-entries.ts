/**
 * A node whose log lost entries to storage damage, until it has them back (after "Protocol-Aware
 * Recovery for Consensus-Based Storage", Alagappan et al., FAST '18).
 *
 * Raft's safety arguments assume that what a node acknowledged stays in its log: a committed entry
 * lives on a majority, and every majority that elects a leader overlaps it (Raft §5.4). A node that
 * lost acknowledged entries breaks that assumption for itself. The host records, with the hard state,
 * `promised`: an upper bound of the last position the node may have acknowledged or voted on
 * (`src/wal/recovery.ts`). While it is set:
 *  - the node never campaigns: it may lack committed entries, which a leader must hold (§5.4.1);
 *  - it grants a (pre-)vote only to a candidate whose log is at least as up-to-date as `promised`
 *    as well as its own: exactly as strict as it was with the entries it lost, so every election
 *    it helps win is one it could have helped win before;
 *  - its acknowledgements need no rule: it acknowledges only what it durably holds again.
 * Once the durable log's last entry is at least as up-to-date as `promised` (its entries came from
 * a leader, and Log Matching makes the prefix the leader's), the node holds everything it may have
 * promised: the bound is dropped, which the next hard state written makes durable, and the event
 * `lost-entries-refetched` is reported.
 *
 * Separately, the host may hold back this node's candidacy (`holdCandidacy`), for instance while its
 * state machine is being replaced after damage: it then votes as usual and campaigns only as a relay.
 */
import type { Position } from "../types/ids.ts";
import type { CoreState } from "./core-state.ts";
import type { EffectsBuilder } from "./effects.ts";
import { relayNeeded } from "./failover-view.ts";

/** Raft §5.4.1's order: a later last term, or the same term and an index at least as large. */
export function atLeastAsUpToDate(lastIndex: number, lastTerm: number, position: Position): boolean {
  return lastTerm > position.term || (lastTerm === position.term && lastIndex >= position.index);
}

/**
 * Whether this node may campaign: no lost entries outstanding, and, while the host holds its
 * candidacy, only as a relay (it ranks first among the voters heard and one of them may lead,
 * `failover-view.ts`): it then hands office over at once (`handoff.ts`), as a witness does. Without
 * the relay a held node whose log is the most up-to-date would refuse every other candidate its
 * vote (§5.4.1) and no leader could ever be elected.
 */
export function mayCampaign(s: CoreState): boolean {
  if (s.promised !== null && s.config.unsafeTestBugs.ignoreLostEntries !== true) return false;
  return !s.candidacyHeld || relayNeeded(s);
}

/** Whether a candidate's log (last index and term) satisfies what this node may have promised. */
export function promiseAllowsVote(s: CoreState, lastIndex: number, lastTerm: number): boolean {
  if (s.promised === null || s.config.unsafeTestBugs.ignoreLostEntries === true) return true;
  return atLeastAsUpToDate(lastIndex, lastTerm, s.promised);
}

/** Drops `promised` once the durable log reaches it (run after every step). */
export function settlePromise(s: CoreState, out: EffectsBuilder): void {
  const promised = s.promised;
  if (promised === null) return;
  const durableTerm = s.log.termAt(s.durableIndex);
  if (durableTerm === undefined || !atLeastAsUpToDate(s.durableIndex, durableTerm, promised)) return;
  s.promised = null;
  out.event({
    type: "lost-entries-refetched",
    node: s.config.id,
    term: s.term,
    index: promised.index,
    promisedTerm: promised.term,
  });
}
