/**
 * The golden scenario commands of failover (`golden-harness.ts`): parsing their arguments into a
 * failover change, and printing a node's failover status. Pure, like the harness.
 *
 *   failover ID [mode=auto|manual|approve] [paused=B] [approve-timeout=MS] [policy=promote|stay-leaderless]
 *   member ID NODE [priority=N] [zone=Z|none] [never-promote=B] [witness=B]
 *   promote ID | failover-status ID | transfer ID [TARGET]
 */
import { assert } from "../lib/assert.ts";
import { nodeId } from "../types/ids.ts";
import type { FailoverStatus } from "./failover.ts";
import type { FailoverChange, FailoverSettings, MemberAttributes } from "./failover-config.ts";

function options(args: readonly string[]): Map<string, string> {
  return new Map(
    args.map((arg) => {
      const at = arg.indexOf("=");
      assert(at > 0, `expected name=value, got ${arg}`);
      return [arg.slice(0, at), arg.slice(at + 1)];
    }),
  );
}

function flag(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  assert(value === "true" || value === "false", `expected true or false, got ${value}`);
  return value === "true";
}

/** `failover` arguments (after the node id) as a settings change. Values are passed through unchecked: the core judges them. */
export function settingsChange(args: readonly string[]): FailoverChange {
  const o = options(args);
  const timeout = o.get("approve-timeout");
  const settings: Partial<FailoverSettings> = {
    ...(o.has("mode") ? { mode: o.get("mode") as FailoverSettings["mode"] } : {}),
    ...(o.has("paused") ? { paused: flag(o.get("paused")) } : {}),
    ...(timeout === undefined ? {} : { approveTimeoutMs: Number(timeout) }),
    ...(o.has("policy") ? { approvePolicy: o.get("policy") as FailoverSettings["approvePolicy"] } : {}),
  };
  return { kind: "settings", settings };
}

/** `member` arguments (after the leader's id): the node, then its attributes. */
export function memberChange(args: readonly string[]): FailoverChange {
  const [node, ...rest] = args;
  const o = options(rest);
  const zone = o.get("zone");
  const attributes: Partial<MemberAttributes> = {
    ...(o.has("priority") ? { priority: Number(o.get("priority")) } : {}),
    ...(zone === undefined ? {} : { zone: zone === "none" ? null : zone }),
    ...(o.has("never-promote") ? { neverPromote: flag(o.get("never-promote")) } : {}),
    ...(o.has("witness") ? { witness: flag(o.get("witness")) } : {}),
  };
  return { kind: "member", node: nodeId(node ?? "?"), attributes };
}

export function formatFailoverStatus(id: string, status: FailoverStatus): string[] {
  const { settings, proposal, promoteRefusal: refusal } = status;
  const heard = status.leaderLastHeardTicksAgo;
  const lines = [
    `${id} failover mode=${settings.mode} paused=${settings.paused} policy=${settings.approvePolicy} automatic=${status.automatic} lost-at=${status.leaderLostAtTick ?? "none"} last-leader=${status.lastLeaderId ?? "none"} leader-heard=${heard === null ? "never" : `${heard} ticks ago`} deadline=${status.approveDeadlineTick ?? "none"}`,
  ];
  for (const peer of status.peers)
    lines.push(
      `  peer ${peer.id} last=${peer.lastLogIndex}/${peer.lastLogTerm} heard=${peer.heardTicksAgo} ticks ago`,
    );
  if (proposal !== null) {
    lines.push(
      `  proposal candidate=${proposal.candidate} last=${proposal.lastLogIndex}/${proposal.lastLogTerm} relay=${proposal.relay} heard=[${proposal.heardVoters.join(",")}] unheard=[${proposal.unheardVoters.join(",")}] quorum=${proposal.quorumHeard} commit=${proposal.commitIndex}`,
    );
  }
  lines.push(
    refusal === null
      ? "  promote: would campaign"
      : `  promote: refused ${refusal.code} peer=${refusal.peer ?? "none"}`,
  );
  return lines;
}
