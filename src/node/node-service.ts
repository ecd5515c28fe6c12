/**
 * What the HTTP layer needs from a node: the seam between `src/http` and `src/node`.
 *
 * Methods throw `BatonError`s for operating errors (the HTTP layer maps codes to statuses through
 * `httpStatusByCode`); anything else is a bug and answers 500 `INTERNAL`. A `NOT_LEADER` error
 * carries `details.leader = {id, http}` when the leader is known, which the forwarding module uses.
 */
import type { ExecuteResponse, QueryResponse, StatusResponse } from "../api/api-types.ts";
import type { NormalizedExecute, NormalizedQuery } from "../api/request-validation.ts";

export type Readiness = { readonly ready: boolean; readonly reason: string | null };

export interface NodeService {
  /** Runs a write batch; a follower throws NOT_LEADER (with the leader when known) or NO_LEADER. */
  execute(request: NormalizedExecute): Promise<ExecuteResponse>;
  /** Serves a read at the requested consistency; throws NOT_LEADER for leader reads on a follower. */
  query(request: NormalizedQuery): Promise<QueryResponse>;
  status(): StatusResponse;
  /** Hash of this node's committed content with the index it was taken at (divergence check). */
  contentHash(): { readonly appliedIndex: number; readonly hash: string };
  /** Ready = caught up enough to serve reads and knows a leader. */
  readiness(): Readiness;
}
