/**
 * A leader's lease: whether a majority of voters (itself included) answered, in its current term, a
 * heartbeat it sent within the shortest election timeout. Tick counts do not advance while a process
 * is paused (SIGSTOP, a long GC), so the core's check-quorum cannot see a pause; a clock can. A
 * leader resumed after a pause longer than that serves no `leader` read until a majority has answered
 * again (or it learns it was deposed).
 *
 * The lease runs from when the leader **sent** the heartbeat, not from when the answer arrived: an
 * answer that waited in the socket of a paused leader, read after the others elected a new leader,
 * vouches only for the time its heartbeat left. So a leader stamps each heartbeat with its own
 * monotonic clock (`peer-envelope.ts`), and a follower's heartbeat answer echoes the latest stamp it
 * received from that leader in that term. A follower that heard its leader at that time refuses votes
 * for an election timeout after (thesis §9.6), so no other leader is elected before the stamp plus
 * the bound. The clock is monotonic (`Clock.monotonicMs`): a wall clock stepped back would stretch
 * the lease.
 *
 * Bounded: one contact per voter heard (members that left are forgotten), one echo (the latest leader).
 */
import type { CoreSummary, Message } from "../consensus/index.ts";
import type { NodeId, Term } from "../types/ids.ts";
import type { Clock } from "./runtime.ts";

export class LeaderLease {
  private readonly self: NodeId;
  private readonly boundMs: number;
  private readonly clock: Clock;
  /** The send time of the latest heartbeat each follower answered in this leader's term. */
  private readonly contact = new Map<NodeId, { term: number; sentAtMs: number }>();
  /** As a follower: the latest stamp a leader sent, and in which term, to echo in answers to it. */
  private echo: { leader: NodeId; term: Term; stamp: number } | null = null;

  constructor(self: NodeId, boundMs: number, clock: Clock) {
    this.self = self;
    this.boundMs = boundMs;
    this.clock = clock;
  }

  /** The stamp to send with `message`: a heartbeat's send time, or the echo a heartbeat answer carries. */
  stampFor(message: Message): number | undefined {
    if (message.type === "heartbeat") return Math.floor(this.clock.monotonicMs());
    if (message.type !== "heartbeatResponse") return undefined;
    const echo = this.echo;
    return echo !== null && echo.leader === message.to && echo.term === message.term ? echo.stamp : undefined;
  }

  /** A message arrived with `stamp` (undefined: none); before the core steps it, so its answer echoes it. */
  arriving(message: Message, stamp: number | undefined): void {
    if (stamp !== undefined && message.type === "heartbeat")
      this.echo = { leader: message.from, term: message.term, stamp };
  }

  /** A message with `stamp` (undefined: none) was stepped; `summary` is the core's after it. */
  stepped(message: Message, stamp: number | undefined, summary: CoreSummary): void {
    if (stamp === undefined || message.type !== "heartbeatResponse") return;
    if (summary.role !== "leader" || message.term !== summary.term) return;
    // A stamp from the future is not one this process sent (an earlier incarnation's): no contact.
    if (stamp > this.clock.monotonicMs()) return;
    const known = this.contact.get(message.from);
    if (known !== undefined && known.term === message.term && known.sentAtMs >= stamp) return;
    this.contact.set(message.from, { term: message.term, sentAtMs: stamp });
  }

  held(summary: CoreSummary): boolean {
    if (summary.role !== "leader") return false;
    const nowMs = this.clock.monotonicMs();
    const voters = summary.clusterConfig.voters;
    let fresh = voters.includes(this.self) ? 1 : 0;
    for (const id of voters) {
      const heard = this.contact.get(id);
      if (
        id !== this.self &&
        heard !== undefined &&
        heard.term === summary.term &&
        nowMs - heard.sentAtMs < this.boundMs
      )
        fresh++;
    }
    // Members that left the configuration are forgotten, so the map holds at most one per member.
    for (const id of this.contact.keys()) if (!voters.includes(id)) this.contact.delete(id);
    return fresh > voters.length / 2;
  }
}
