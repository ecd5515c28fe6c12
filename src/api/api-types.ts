/**
 * Wire types of the HTTP API (DESIGN.md §3): request and response bodies as they travel as JSON.
 *
 * This module is the one place both sides agree on the shape of the API. It holds types only (no run
 * time code, no imports), so the server's HTTP layer can import it without pulling the client in, and
 * the client can import it without pulling the server in. Extend these types; never break them.
 *
 * Integers: JSON numbers are doubles. Any integer the server cannot represent exactly as a double
 * (a 64-bit rowid or column value beyond ±2^53) is sent as a decimal JSON string instead; the client
 * passes such strings through unchanged and never converts them, so no precision is ever lost silently.
 */

/** How many nodes must have a write durably before it is acknowledged. */
export type Durability = "local" | "one" | "majority" | "all";

/** How fresh a read must be: `linearizable` (leader, confirmed), `leader` (leader, unconfirmed), `any` node. */
export type Consistency = "linearizable" | "leader" | "any";

/**
 * A value bound to a statement parameter. JSON has no blob or 64-bit integer type: pass an integer
 * beyond ±2^53 as a decimal string.
 */
export type SqlValue = null | boolean | number | string;

/** Positional parameters (`?`, `?1`) as an array, or named parameters (`:name`, `$name`, `@name`) as an object. */
export type SqlParams = readonly SqlValue[] | { readonly [name: string]: SqlValue };

/** The object form of a statement. */
export type StatementObject = { readonly sql: string; readonly params?: SqlParams };

/** The tuple form of a statement: the SQL text followed by its positional parameters. */
export type StatementTuple = readonly [sql: string, ...params: SqlValue[]];

/** One statement in any of the three accepted forms: `"sql"`, `["sql", ...params]` or `{sql, params}`. */
export type Statement = string | StatementTuple | StatementObject;

/** Any JSON value; result cells are passed through exactly as the server encoded them. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/** One cell of a result row. Integers beyond ±2^53 arrive as decimal strings. */
export type ResultValue = JsonValue;

/** A point in the replicated log: the index and the term of the entry that carried a write. */
export type Position = { readonly index: number; readonly term: number };

/** The applied index a read was served at; a session sends the highest one it saw as `minIndex`. */
export type ReadPosition = { readonly index: number };

/** A node as other nodes advertise it: its id and its HTTP address (`host:port` or a URL). */
export type NodeAddress = { readonly id: string; readonly http: string };

/** `POST /v1/execute`: the statements run as one transaction on the leader. */
export type ExecuteRequest = {
  readonly statements: readonly Statement[];
  readonly durability?: Durability;
  /** Idempotency key: a retry carrying the same id is applied at most once. */
  readonly requestId?: string;
  /**
   * Fencing: run only if the leader's current term is exactly this one; otherwise `TERM_CHANGED`
   * and nothing is applied. A client passes the term of an earlier answer to make sure leadership
   * has not moved since (see "Fencing tokens" in the README).
   */
  readonly expectedTerm?: number;
  readonly timeoutMs?: number;
};

/** The outcome of one statement of an execute batch; `columns`/`rows` only for statements that return rows. */
export type StatementResult = {
  readonly rowsAffected: number;
  /** A decimal string when the rowid does not fit a double exactly. */
  readonly lastInsertRowid: number | string;
  readonly columns?: readonly string[];
  readonly rows?: readonly (readonly ResultValue[])[];
};

export type ExecuteResponse = {
  readonly results: readonly StatementResult[];
  readonly position: Position;
  /** Fencing token: the term of the leadership the write was accepted under (= `position.term`). */
  readonly term: number;
  /** The id of the node that answered. */
  readonly node: string;
};

/** `POST /v1/query`: read-only statements served according to `consistency`. */
export type QueryRequest = {
  readonly statements: readonly Statement[];
  readonly consistency?: Consistency;
  /** Serve only once the node has applied at least this index (read-your-writes across nodes). */
  readonly minIndex?: number;
  /** Refuse (`STALE_READ`) rather than serve from a node lagging the leader by more than this. */
  readonly maxLagMs?: number;
  readonly timeoutMs?: number;
};

/** The rows of one query statement, column-major names and row-major values. */
export type QueryStatementResult = {
  readonly columns: readonly string[];
  readonly rows: readonly (readonly ResultValue[])[];
};

export type QueryResponse = {
  readonly results: readonly QueryStatementResult[];
  readonly position: ReadPosition;
  /** Fencing token: the term the serving node was in when it served the read. */
  readonly term: number;
  /** The id of the node that served the read. */
  readonly node: string;
};

/** A node's Raft role; `preCandidate` is a follower polling for votes before it campaigns (pre-vote). */
export type NodeRole = "leader" | "follower" | "preCandidate" | "candidate";

/** One member as `GET /v1/status` lists it; the leader adds replication progress. */
export type MemberStatus = {
  readonly id: string;
  readonly http?: string;
  readonly matchIndex?: number;
  readonly lagEntries?: number;
  readonly lastContactMs?: number;
  readonly [key: string]: unknown;
};

/** `GET /v1/status`. */
export type StatusResponse = {
  readonly id: string;
  readonly role: NodeRole;
  readonly term: number;
  readonly leader: NodeAddress | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  /** Whether this node votes, only replicates (a read replica), or is not in the configuration. */
  readonly membership: "voter" | "learner" | "not-a-member";
  /** Every member of the configuration this node uses (voters, then learners). */
  readonly members: readonly MemberStatus[];
  readonly snapshots: StatusSnapshots;
  /** Whether this node is a witness (votes and keeps the log, holds no data, serves no SQL). */
  readonly witness?: boolean;
  /** This node's view of failover: mode, pause, since when the leader is lost, a pending proposal. */
  readonly failover?: {
    readonly settings: {
      readonly mode: string;
      readonly paused: boolean;
      readonly approveTimeoutMs: number;
      readonly approvePolicy: string;
    };
    readonly automatic: boolean;
    readonly leaderLostMsAgo: number | null;
    readonly [key: string]: unknown;
  };
  readonly storage: StatusStorage;
  readonly admission: StatusAdmission;
};

/** A node's storage health, in `/v1/status` (docs/architecture.md, "Storage faults"). */
export type StatusStorage = {
  /** Set while the log lacks entries it lost to damage: what this node may have promised before. */
  readonly lostEntriesUntil: { readonly index: number; readonly term: number } | null;
  /** Set while the database is damaged (failed a consistency check) and not yet replaced. */
  readonly damaged: {
    readonly index: number;
    readonly ownHash: string;
    readonly majorityHash: string;
    readonly detectedAtMs: number;
  } | null;
  /** Whether this node's database matched a majority since it opened (an empty one needs not). */
  readonly verified: boolean;
  /** The last consistency check this node judged itself by: its index and outcome. */
  readonly lastCheck: { readonly index: number; readonly outcome: string; readonly atMs: number } | null;
};

/** A node's admission control (`src/node/admission.ts`), in `/v1/status`. */
export type StatusAdmission = {
  readonly readsInFlight: number;
  readonly writesInFlight: number;
  /** Requests refused OVERLOADED since the node started: past the in-flight bounds, and for the loop's delay. */
  readonly refused: { readonly read: number; readonly write: number; readonly loopDelay: number };
  /** The event loop's recent delay in ms (null when not measured), and the delay past which new work is shed. */
  readonly loopDelayMs: number | null;
  readonly loopDelayShedMs: number;
};

/** A node's snapshots and log compaction, in `/v1/status`. */
export type StatusSnapshots = {
  /** The latest snapshot this node holds (taken or installed), or null. */
  readonly latest: { readonly index: number; readonly term: number; readonly bytes: number } | null;
  /** Snapshots taken by this process, and snapshots received from a leader and installed. */
  readonly taken: number;
  readonly installed: number;
  readonly lastDurationMs: number | null;
  readonly lastTakenAtMs: number | null;
  /** The first index the log still holds (everything before is compacted). */
  readonly logFirstIndex: number;
};

/** The body of every error answer. `code` is stable; `message` may change. */
export type ErrorBody = {
  readonly code: string;
  readonly message: string;
  /** With `NOT_LEADER`: where the leader is, when the node knows. */
  readonly leader?: NodeAddress | null;
  /** Structured detail, for example `{durableOn, clusterSize}` with `NOT_CONFIRMED`. */
  readonly details?: { readonly [key: string]: unknown };
  /** The term the answering node was in, and its id (present on every answer of a node). */
  readonly term?: number;
  readonly node?: string;
};

export type ErrorResponse = { readonly error: ErrorBody };
