/**
 * A leader's wall-clock lease: whether a majority of voters (itself included) answered its
 * replication in its current term within the shortest election timeout. Tick counts do not advance
 * while a process is paused (SIGSTOP, a long GC), so the core's check-quorum cannot see a pause; the
 * wall clock can. A leader resumed after a pause longer than that serves no `leader` read until a
 * majority has answered again (or it learns it was deposed). Bounded: one entry per voter heard.
 */
import type { CoreSummary, Message } from "../consensus/index.ts";
import type { NodeId } from "../types/ids.ts";
import type { Clock } from "./runtime.ts";

export class LeaderLease {
  private readonly self: NodeId;
  private readonly boundMs: number;
  private readonly clock: Clock;
  /** When each follower last answered this node's replication as leader, and in which term. */
  private readonly contact = new Map<NodeId, { term: number; atMs: number }>();

  constructor(self: NodeId, boundMs: number, clock: Clock) {
    this.self = self;
    this.boundMs = boundMs;
    this.clock = clock;
  }

  /** A follower answered this leader's replication in the leader's term: note when (wall clock). */
  noteContact(message: Message, summary: CoreSummary): void {
    if (message.type !== "appendEntriesResponse" && message.type !== "heartbeatResponse") return;
    if (summary.role !== "leader" || message.term !== summary.term) return;
    this.contact.set(message.from, { term: message.term, atMs: this.clock.nowMs() });
  }

  held(summary: CoreSummary): boolean {
    if (summary.role !== "leader") return false;
    const nowMs = this.clock.nowMs();
    const voters = summary.clusterConfig.voters;
    let fresh = voters.includes(this.self) ? 1 : 0;
    for (const id of voters) {
      const heard = this.contact.get(id);
      if (
        id !== this.self &&
        heard !== undefined &&
        heard.term === summary.term &&
        nowMs - heard.atMs < this.boundMs
      )
        fresh++;
    }
    // Members that left the configuration are forgotten, so the map holds at most one per member.
    for (const id of this.contact.keys()) if (!voters.includes(id)) this.contact.delete(id);
    return fresh > voters.length / 2;
  }
}
