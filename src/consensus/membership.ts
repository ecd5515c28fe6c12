/**
 * Membership changes on the leader: single-server changes (Ongaro's dissertation §4.1) and the
 * removal of the leader itself (§4.2.2).
 *
 * Why single-server changes rather than joint consensus (§4.3): adding or removing one voter at a
 * time makes every majority of the old voter set overlap every majority of the new one, so no
 * moment exists at which two disjoint majorities could each elect a leader or commit, and a node
 * may switch to a new configuration as soon as its entry is in its log, with no intermediate
 * joint configuration, no second entry and no special election or commit rule. The cost is that
 * replacing a voter takes two changes (add a learner, promote it; then demote or remove the old
 * one), which operators do anyway to let the newcomer catch up first.
 *
 * Rules enforced here (each refusal is a typed code, never an assertion):
 *  - only a leader, not transferring, within its bounds (the refusals of any proposal);
 *  - only after the leader committed an entry of its own term (`LEADER_NOT_READY`): the fix
 *    Ongaro posted to raft-dev in 2015 for the single-server bug, where a leader of a new term
 *    could otherwise append a change on top of an uncommitted change of an earlier leader and let
 *    two overlapping-but-different changes each reach a majority of their own configuration;
 *  - one change at a time: the previous configuration entry must be committed
 *    (`MEMBERSHIP_CHANGE_PENDING`);
 *  - the change must make sense for the configuration (`cluster-config.ts`: `NODE_ALREADY_MEMBER`,
 *    `NODE_NOT_MEMBER`, `NODE_NOT_LEARNER`, `NODE_NOT_VOTER`, `NO_VOTER_LEFT`, bounds).
 *
 * An accepted change is an `EntryKind.config` entry holding the whole new configuration, tracked
 * as a `majority` proposal: it is acknowledged once committed, counted among the voters of the new
 * configuration (the leader uses it from the moment it is appended). A leader that the change
 * makes a non-voter keeps leading without counting itself and steps down once the entry commits
 * (`leader.ts`, `afterCommitMaybeAdvanced`).
 */
import { assert } from "../lib/assert.ts";
import { EntryKind } from "../types/log-entry.ts";
import { applyMembershipChange, encodeClusterConfig, sameClusterConfig } from "./cluster-config.ts";
import { type CoreState, syncProgress } from "./core-state.ts";
import type { EffectsBuilder } from "./effects.ts";
import type { ChangeMembershipInput } from "./inputs.ts";
import { appendProposal, proposalRefusal, rejectProposal } from "./leader.ts";
import { broadcastAppend } from "./replication.ts";

export function handleChangeMembership(
  s: CoreState,
  out: EffectsBuilder,
  input: ChangeMembershipInput,
): void {
  const { proposalId, change } = input;
  const refusal = proposalRefusal(s);
  if (refusal !== null) {
    rejectProposal(s, out, proposalId, refusal);
    return;
  }
  if (s.log.termAt(s.commitIndex) !== s.term) {
    rejectProposal(s, out, proposalId, "LEADER_NOT_READY");
    return;
  }
  if (s.log.configIndex > s.commitIndex) {
    out.membershipRejected.push({ proposalId, code: "MEMBERSHIP_CHANGE_PENDING", leaderId: s.leaderId });
    return;
  }
  const next = applyMembershipChange(s.log.config, change);
  if (typeof next === "string") {
    out.membershipRejected.push({ proposalId, code: next, leaderId: s.leaderId });
    return;
  }
  const data = encodeClusterConfig(next);
  const timeoutTicks = input.timeoutTicks ?? s.config.proposalTimeoutTicks;
  const index = appendProposal(
    s,
    out,
    { proposalId, kind: EntryKind.config, data, durability: "majority" },
    timeoutTicks,
  );
  assert(
    s.log.configIndex === index && sameClusterConfig(s.log.config, next),
    "the leader adopts its change",
  );
  out.event({
    type: "membership-change-proposed",
    node: s.config.id,
    term: s.term,
    index,
    kind: change.kind,
    target: change.node,
  });
  syncProgress(s);
  broadcastAppend(s, out, false);
}
