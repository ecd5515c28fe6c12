/**
 * Failover changes on the leader: the cluster's failover settings and members' attributes change
 * through the replicated configuration, like membership (`membership.ts`) and under the same rules,
 * so that every node acts on the same settings in the same log order and a snapshot carries them.
 *
 * Rules (each refusal a typed code): only a leader, not transferring, within its bounds (the
 * refusals of any proposal, in `proposals`); only after it committed an entry of its own term
 * (`LEADER_NOT_READY`); one configuration change at a time, membership or failover: the previous
 * configuration entry must be committed (`CONFIG_CHANGE_PENDING`); and the change must fit the
 * configuration (`NODE_NOT_MEMBER`, `INVALID_FAILOVER_SETTING`, `NO_ELIGIBLE_VOTER`, in
 * `failoverChangeRejected`). A change that sets what is already set is accepted and appended (an
 * operator's command is idempotent).
 *
 * An accepted change is an `EntryKind.config` entry holding the whole new configuration (version 2
 * unless everything is back to the defaults), tracked as a `majority` proposal, used by every node
 * from the moment it is in its log (dissertation §4.1; no voter changes, so no quorum changes
 * either). A leader that the change makes a witness or never-promote starts handing over at once
 * (`handoff.ts`).
 */
import { assert } from "../lib/assert.ts";
import { EntryKind } from "../types/log-entry.ts";
import { applyFailoverChange, encodeClusterConfig, sameClusterConfig } from "./cluster-config.ts";
import type { CoreState } from "./core-state.ts";
import type { EffectsBuilder } from "./effects.ts";
import { maybeHandOff } from "./handoff.ts";
import type { ChangeFailoverInput } from "./inputs.ts";
import { appendProposal, proposalRefusal, rejectProposal } from "./leader.ts";
import { broadcastAppend } from "./replication.ts";

export function handleChangeFailover(s: CoreState, out: EffectsBuilder, input: ChangeFailoverInput): void {
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
  const leaderId = s.leaderId;
  if (s.log.configIndex > s.commitIndex) {
    out.failoverChangeRejected.push({ proposalId, code: "CONFIG_CHANGE_PENDING", leaderId });
    return;
  }
  const next = applyFailoverChange(s.log.config, change);
  if (typeof next === "string") {
    out.failoverChangeRejected.push({ proposalId, code: next, leaderId });
    return;
  }
  const timeoutTicks = input.timeoutTicks ?? s.config.proposalTimeoutTicks;
  const data = encodeClusterConfig(next);
  const proposal = { proposalId, kind: EntryKind.config, data, durability: "majority" as const };
  const index = appendProposal(s, out, proposal, timeoutTicks);
  assert(
    s.log.configIndex === index && sameClusterConfig(s.log.config, next),
    "the leader adopts its change",
  );
  broadcastAppend(s, out, false);
  maybeHandOff(s, out);
}
