/**
 * Where each member's HTTP API listens, and the one way the node tells a client to go elsewhere.
 *
 * Addresses come from configuration and from peers' own announcements over the transport. Every
 * refusal goes through `refusal`, so the `NOT_LEADER` shape is the same whichever path refuses
 * (the write gate, the core rejecting a proposal, the core rejecting a read index):
 * `details.leader = {id, http}`, which the HTTP layer forwards on and the client follows.
 */
import { BatonError, ErrorCode, notLeaderError } from "../lib/errors.ts";
import type { NodeId } from "../types/ids.ts";

/** Codes under which the core turns a request away; each maps to the error code of the same name. */
export type RefusalCode =
  | "NOT_LEADER"
  | "NO_LEADER"
  | "LEADERSHIP_TRANSFER"
  | "LEADER_NOT_READY"
  | "OVERLOADED";

const refusalMessages: Readonly<Record<Exclude<RefusalCode, "NOT_LEADER" | "NO_LEADER">, string>> = {
  LEADERSHIP_TRANSFER: "leadership is being transferred; retry shortly",
  LEADER_NOT_READY: "the leader has not yet committed an entry of its term; retry shortly",
  OVERLOADED: "too many requests are waiting on the leader",
};

export class PeerDirectory {
  readonly selfId: NodeId;
  readonly selfHttp: string;
  private readonly http: Map<NodeId, string>;

  constructor(selfId: NodeId, selfHttp: string, known: ReadonlyMap<NodeId, string>) {
    this.selfId = selfId;
    this.selfHttp = selfHttp;
    this.http = new Map(known);
  }

  /** A peer announced where its HTTP API listens. */
  learn(peer: NodeId, http: string): void {
    this.http.set(peer, http);
  }

  /** The peers whose HTTP address is known. */
  knownIds(): NodeId[] {
    return [...this.http.keys()];
  }

  httpOf(id: NodeId): string | null {
    if (id === this.selfId) return this.selfHttp;
    return this.http.get(id) ?? null;
  }

  /**
   * The error that turns a request away. `NOT_LEADER` names the leader with its HTTP address
   * (`notLeaderError`); without a known leader, or without its address, there is nowhere to send
   * the client and it becomes `NO_LEADER`. Every other code keeps its name, so `LEADER_NOT_READY`
   * reaches the client as itself (it retries the same node).
   */
  refusal(code: RefusalCode, leaderId: NodeId | null): BatonError {
    if (code === "NOT_LEADER" || code === "NO_LEADER") {
      const http = leaderId === null || leaderId === this.selfId ? null : this.httpOf(leaderId);
      return notLeaderError(leaderId === null || http === null ? null : { id: leaderId, http });
    }
    return new BatonError(ErrorCode[code], refusalMessages[code]);
  }
}
