/**
 * Operating errors with permanent codes.
 *
 * Callers match on `.code`, never on the message: codes are part of the public contract and are
 * never renamed or reused; messages may change. Every code has exactly one HTTP status in
 * `httpStatusByCode` and one retry rule in `retryByCode`, exhaustive tables that the HTTP layer and
 * the client both read, so neither guesses and the two can never disagree.
 */

export const ErrorCode = {
  // Request and SQL errors.
  BAD_REQUEST: "BAD_REQUEST",
  PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  SQL_ERROR: "SQL_ERROR",
  FORBIDDEN_STATEMENT: "FORBIDDEN_STATEMENT",
  NOT_A_QUERY: "NOT_A_QUERY",
  /** A statement's result passed `resultRowsMax` rows or the request's results passed `resultBytesMax` bytes. */
  RESULT_TOO_LARGE: "RESULT_TOO_LARGE",
  /** A statement produced a string or blob larger than the node allows. */
  VALUE_TOO_LARGE: "VALUE_TOO_LARGE",
  /** A query ran past its time bound (the request's `timeoutMs`, capped by the node's `queryMsMax`) and was stopped. */
  QUERY_TIMEOUT: "QUERY_TIMEOUT",
  /** The process running a query died before answering (killed from outside, or out of memory); the node serves on. */
  QUERY_ABORTED: "QUERY_ABORTED",
  NOT_FOUND: "NOT_FOUND",
  METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
  /** The request conflicts with the target's state (an orphaned entry already resolved, say). */
  CONFLICT: "CONFLICT",
  /** Replaying an orphaned write met rows that changed since: nothing was applied. */
  ORPHAN_REPLAY_CONFLICT: "ORPHAN_REPLAY_CONFLICT",
  // Cluster state.
  NOT_LEADER: "NOT_LEADER",
  NO_LEADER: "NO_LEADER",
  LEADERSHIP_TRANSFER: "LEADERSHIP_TRANSFER",
  /** The leader has not yet committed an entry of its term, so it cannot serve linearizable reads (thesis §6.4). */
  LEADER_NOT_READY: "LEADER_NOT_READY",
  /** A write carried `expectedTerm` and the leader is in another term: nothing was applied. */
  TERM_CHANGED: "TERM_CHANGED",
  TIMEOUT: "TIMEOUT",
  /** A follower's forward to the leader broke off after it may have been received: outcome unknown. */
  FORWARD_FAILED: "FORWARD_FAILED",
  NOT_CONFIRMED: "NOT_CONFIRMED",
  STALE_READ: "STALE_READ",
  OVERLOADED: "OVERLOADED",
  SHUTTING_DOWN: "SHUTTING_DOWN",
  /** A write's leader lost leadership before its durability level was confirmed: outcome unknown, retry with the same requestId. */
  LEADERSHIP_LOST: "LEADERSHIP_LOST",
  /** A peer message that does not decode; the node drops it. */
  BAD_MESSAGE: "BAD_MESSAGE",
  // Membership changes (`src/node/member-changes.ts`; the first eight are the consensus core's refusals).
  /** The previous membership change is not committed yet: one change at a time. */
  MEMBERSHIP_CHANGE_PENDING: "MEMBERSHIP_CHANGE_PENDING",
  NODE_ALREADY_MEMBER: "NODE_ALREADY_MEMBER",
  NODE_NOT_MEMBER: "NODE_NOT_MEMBER",
  NODE_NOT_LEARNER: "NODE_NOT_LEARNER",
  NODE_NOT_VOTER: "NODE_NOT_VOTER",
  /** Demoting or removing the last voter would leave nobody to elect a leader. */
  NO_VOTER_LEFT: "NO_VOTER_LEFT",
  VOTERS_TOO_MANY: "VOTERS_TOO_MANY",
  LEARNERS_TOO_MANY: "LEARNERS_TOO_MANY",
  /** Demoting or removing the last voter that may lead (the others are witnesses or never-promote). */
  NO_ELIGIBLE_VOTER: "NO_ELIGIBLE_VOTER",
  /** A learner was not caught up with the leader within the wait, so it was not promoted (it stays a learner). */
  MEMBER_NOT_CAUGHT_UP: "MEMBER_NOT_CAUGHT_UP",
  /** The previous configuration change (membership or failover) is not committed yet: one at a time. */
  CONFIG_CHANGE_PENDING: "CONFIG_CHANGE_PENDING",
  /** A failover setting or member attribute out of its range. */
  INVALID_FAILOVER_SETTING: "INVALID_FAILOVER_SETTING",
  /** The node may not be promoted now (`details.reason`: LEADER_ALIVE, LOG_BEHIND, QUORUM_NOT_HEARD, …). */
  PROMOTION_REFUSED: "PROMOTION_REFUSED",
  /** A witness keeps the log and votes but holds no data: it serves no SQL. */
  WITNESS_NO_SQL: "WITNESS_NO_SQL",
  /** A new node could not join its cluster (`baton start --join`). */
  JOIN_FAILED: "JOIN_FAILED",
  // Storage.
  WAL_CORRUPT: "WAL_CORRUPT",
  WAL_CLOSED: "WAL_CLOSED",
  WAL_IO: "WAL_IO",
  SNAPSHOT_CORRUPT: "SNAPSHOT_CORRUPT",
  STORE_CORRUPT: "STORE_CORRUPT",
  /** A log entry's store payload fails its checksum or does not decode: never applied. */
  PAYLOAD_CORRUPT: "PAYLOAD_CORRUPT",
  /** A store file or payload written by a newer format version than this build understands. */
  STORE_VERSION_UNSUPPORTED: "STORE_VERSION_UNSUPPORTED",
  /** A replica could not apply a committed payload exactly: its data differs from the leader's. */
  STORE_DIVERGED: "STORE_DIVERGED",
  /** The store's WAL checkpoint failed (an I/O error, a full disk): the node stops, as for a failed fsync. */
  STORE_CHECKPOINT_FAILED: "STORE_CHECKPOINT_FAILED",
  /** The node's history file (`review/history.jsonl`) or its replicated mark could not be written or synced: the node stops. */
  HISTORY_IO: "HISTORY_IO",
  /**
   * This node's database differs from what a majority of its peers hold at the same log index: it
   * serves nothing from it until a leader's snapshot replaces it. Another node can answer.
   */
  STORE_DAMAGED: "STORE_DAMAGED",
  /**
   * This node restarted with data and has not yet compared its database with a majority of the
   * voters: it serves none of it until then. Another node can answer.
   */
  STORE_UNVERIFIED: "STORE_UNVERIFIED",
  /** This node lost data to storage damage and cannot get an intact copy from its peers: it stops. */
  NO_INTACT_COPY: "NO_INTACT_COPY",
  // Peer transport.
  TRANSPORT_LISTEN_FAILED: "TRANSPORT_LISTEN_FAILED",
  /**
   * The node's query processes or write sandbox did not start: not ready within their bound (a
   * loaded machine), or they exited (a database they cannot open). The node does not start.
   */
  PROCESS_START_FAILED: "PROCESS_START_FAILED",
  // Configuration.
  BAD_CONFIG: "BAD_CONFIG",
  INTERNAL: "INTERNAL",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The one mapping from error code to HTTP status. Exhaustive: adding a code without a status fails type-checking. */
export const httpStatusByCode: { readonly [K in ErrorCode]: number } = {
  BAD_REQUEST: 400,
  PAYLOAD_TOO_LARGE: 413,
  SQL_ERROR: 400,
  FORBIDDEN_STATEMENT: 400,
  NOT_A_QUERY: 400,
  RESULT_TOO_LARGE: 400,
  VALUE_TOO_LARGE: 400,
  QUERY_TIMEOUT: 504,
  QUERY_ABORTED: 500,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  ORPHAN_REPLAY_CONFLICT: 409,
  NOT_LEADER: 409,
  NO_LEADER: 503,
  LEADERSHIP_TRANSFER: 503,
  LEADER_NOT_READY: 503,
  TERM_CHANGED: 412,
  TIMEOUT: 504,
  FORWARD_FAILED: 502,
  NOT_CONFIRMED: 504,
  STALE_READ: 503,
  OVERLOADED: 503,
  SHUTTING_DOWN: 503,
  LEADERSHIP_LOST: 503,
  BAD_MESSAGE: 400,
  MEMBERSHIP_CHANGE_PENDING: 503,
  NODE_ALREADY_MEMBER: 409,
  NODE_NOT_MEMBER: 409,
  NODE_NOT_LEARNER: 409,
  NODE_NOT_VOTER: 409,
  NO_VOTER_LEFT: 409,
  VOTERS_TOO_MANY: 409,
  LEARNERS_TOO_MANY: 409,
  NO_ELIGIBLE_VOTER: 409,
  MEMBER_NOT_CAUGHT_UP: 503,
  CONFIG_CHANGE_PENDING: 503,
  INVALID_FAILOVER_SETTING: 400,
  PROMOTION_REFUSED: 409,
  WITNESS_NO_SQL: 503,
  JOIN_FAILED: 503,
  WAL_CORRUPT: 500,
  WAL_CLOSED: 503,
  WAL_IO: 500,
  SNAPSHOT_CORRUPT: 500,
  STORE_CORRUPT: 500,
  PAYLOAD_CORRUPT: 500,
  STORE_VERSION_UNSUPPORTED: 500,
  STORE_DIVERGED: 500,
  STORE_CHECKPOINT_FAILED: 500,
  HISTORY_IO: 500,
  STORE_DAMAGED: 503,
  STORE_UNVERIFIED: 503,
  NO_INTACT_COPY: 500,
  TRANSPORT_LISTEN_FAILED: 500,
  PROCESS_START_FAILED: 500,
  BAD_CONFIG: 400,
  INTERNAL: 500,
};

/**
 * How a caller may retry after an error with a given code:
 * - `never`: sending the request again cannot change the answer;
 * - `redirect`: go at once to the leader the error names (`NOT_LEADER`);
 * - `backoff`: try the same node again after a wait;
 * - `elsewhere`: try another node (a read that a lagging node refused);
 * - `rediscover`: find the leader again, then try after a wait.
 */
export type RetryKind = "never" | "redirect" | "backoff" | "elsewhere" | "rediscover";

/**
 * What an error says about a write: `not-applied` proves that the request which drew it was not
 * applied (so it may be sent anywhere again); `unknown` means it may have been, so it must only be
 * sent again with the same requestId. `unknown` is the safe default for any code a node might raise
 * after proposing a write.
 */
export type WriteOutcome = "not-applied" | "unknown";

export type RetryRule = {
  readonly retry: RetryKind;
  readonly writeOutcome: WriteOutcome;
  /** The `Retry-After` a server sends with this code, in whole seconds, or null to send none. */
  readonly retryAfterSeconds: number | null;
};

const never: RetryRule = { retry: "never", writeOutcome: "unknown", retryAfterSeconds: null };
const rejected: RetryRule = { retry: "never", writeOutcome: "not-applied", retryAfterSeconds: null };
/** A node that stops, or a cluster between leaders, needs about an election timeout to recover. */
// An election takes about one election timeout (well under a second by default): a whole-second
// Retry-After floor would hold every client back long after a new leader serves. Clients back off
// on their own, starting at tens of milliseconds.
const afterElection: RetryRule = { retry: "rediscover", writeOutcome: "unknown", retryAfterSeconds: null };

/**
 * The one retry table. Exhaustive: adding a code without a rule fails type-checking. A code that
 * is never retried carries no `Retry-After` (checked in `errors.test.ts`).
 */
export const retryByCode: { readonly [K in ErrorCode]: RetryRule } = {
  BAD_REQUEST: rejected,
  PAYLOAD_TOO_LARGE: never,
  SQL_ERROR: never,
  FORBIDDEN_STATEMENT: never,
  NOT_A_QUERY: never,
  // The batch was refused before it could commit: nothing was applied, and the same request fails again.
  RESULT_TOO_LARGE: rejected,
  VALUE_TOO_LARGE: rejected,
  // The same query meets the same bound again, and each attempt costs the node a process for that
  // long: a client must change the query (or raise its timeoutMs within the node's bound), not retry.
  QUERY_TIMEOUT: rejected,
  // The query may itself be what killed its process (memory): sending it again blindly could repeat that.
  QUERY_ABORTED: rejected,
  NOT_FOUND: never,
  METHOD_NOT_ALLOWED: never,
  CONFLICT: never,
  ORPHAN_REPLAY_CONFLICT: never,
  NOT_LEADER: { retry: "redirect", writeOutcome: "not-applied", retryAfterSeconds: null },
  NO_LEADER: { retry: "rediscover", writeOutcome: "not-applied", retryAfterSeconds: null },
  LEADERSHIP_TRANSFER: afterElection,
  // The leader is ready as soon as it commits an entry of its term, within a heartbeat or two.
  LEADER_NOT_READY: { retry: "backoff", writeOutcome: "not-applied", retryAfterSeconds: null },
  // The caller fenced on a term that is over: retrying the same request fails the same way.
  TERM_CHANGED: rejected,
  // A write that timed out may still commit: retrying with the same requestId learns its outcome.
  TIMEOUT: { retry: "rediscover", writeOutcome: "unknown", retryAfterSeconds: null },
  FORWARD_FAILED: { retry: "rediscover", writeOutcome: "unknown", retryAfterSeconds: null },
  // The write is in the log but short of its durability level; whether to wait longer is the caller's call.
  NOT_CONFIRMED: never,
  STALE_READ: { retry: "elsewhere", writeOutcome: "not-applied", retryAfterSeconds: null },
  OVERLOADED: { retry: "backoff", writeOutcome: "not-applied", retryAfterSeconds: 1 },
  SHUTTING_DOWN: afterElection,
  LEADERSHIP_LOST: afterElection,
  BAD_MESSAGE: never,
  // The change before it commits within a few heartbeats, unless the cluster lost its majority.
  MEMBERSHIP_CHANGE_PENDING: { retry: "backoff", writeOutcome: "not-applied", retryAfterSeconds: 1 },
  NODE_ALREADY_MEMBER: rejected,
  NODE_NOT_MEMBER: rejected,
  NODE_NOT_LEARNER: rejected,
  NODE_NOT_VOTER: rejected,
  NO_VOTER_LEFT: rejected,
  VOTERS_TOO_MANY: rejected,
  LEARNERS_TOO_MANY: rejected,
  NO_ELIGIBLE_VOTER: rejected,
  // The learner stays a learner; promoting it again once it has caught up may succeed.
  MEMBER_NOT_CAUGHT_UP: { retry: "backoff", writeOutcome: "not-applied", retryAfterSeconds: 1 },
  JOIN_FAILED: { retry: "backoff", writeOutcome: "not-applied", retryAfterSeconds: 1 },
  CONFIG_CHANGE_PENDING: { retry: "backoff", writeOutcome: "not-applied", retryAfterSeconds: 1 },
  INVALID_FAILOVER_SETTING: rejected,
  PROMOTION_REFUSED: rejected,
  // Another member serves it: the client sends it elsewhere.
  WITNESS_NO_SQL: { retry: "elsewhere", writeOutcome: "not-applied", retryAfterSeconds: null },
  WAL_CORRUPT: never,
  // The log closes only when the node stops, so this is the same condition as SHUTTING_DOWN.
  WAL_CLOSED: afterElection,
  WAL_IO: never,
  SNAPSHOT_CORRUPT: never,
  STORE_CORRUPT: never,
  PAYLOAD_CORRUPT: never,
  STORE_VERSION_UNSUPPORTED: never,
  STORE_DIVERGED: never,
  STORE_CHECKPOINT_FAILED: never,
  HISTORY_IO: never,
  // Refused before anything ran: another node holds intact data.
  STORE_DAMAGED: { retry: "elsewhere", writeOutcome: "not-applied", retryAfterSeconds: null },
  STORE_UNVERIFIED: { retry: "elsewhere", writeOutcome: "not-applied", retryAfterSeconds: null },
  NO_INTACT_COPY: never,
  TRANSPORT_LISTEN_FAILED: never,
  PROCESS_START_FAILED: never,
  BAD_CONFIG: never,
  INTERNAL: never,
};

export class BatonError extends Error {
  override name = "BatonError";
  readonly code: ErrorCode;
  /** Structured, JSON-safe detail for the caller (for example which statement failed). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}

export function isBatonError(error: unknown, code?: ErrorCode): error is BatonError {
  return error instanceof BatonError && (code === undefined || error.code === code);
}

/** Where the leader is, as a `NOT_LEADER` error carries it and the HTTP API serializes it. */
export type LeaderAddress = { readonly id: string; readonly http: string };

/**
 * The one way to refuse a request that only the leader may serve: `NOT_LEADER` with
 * `details.leader = {id, http}` when the leader is known (the HTTP layer forwards to it, the client
 * goes to it), `NO_LEADER` otherwise. Pass `null` also when the leader's HTTP address is unknown:
 * an id alone is no address to forward to.
 */
export function notLeaderError(leader: LeaderAddress | null): BatonError {
  if (leader === null)
    return new BatonError(ErrorCode.NO_LEADER, "no leader is known; an election may be in progress");
  return new BatonError(ErrorCode.NOT_LEADER, `this node is not the leader; ${leader.id} is`, {
    leader: { id: leader.id, http: leader.http },
  });
}

/** The leader a `NOT_LEADER` error names, or null for any other error or a malformed detail. */
export function leaderOf(error: unknown): LeaderAddress | null {
  if (!isBatonError(error, ErrorCode.NOT_LEADER)) return null;
  const leader = error.details.leader as Partial<LeaderAddress> | null | undefined;
  if (typeof leader?.id !== "string" || typeof leader.http !== "string" || leader.http === "") return null;
  return { id: leader.id, http: leader.http };
}
