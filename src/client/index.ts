/**
 * `batondb/client`: the public surface of the Baton client library.
 *
 * Everything a caller needs is exported here and nothing else is public; the wire types come from
 * `src/api/api-types.ts`, which the server's HTTP layer shares. The package root (`src/index.ts`)
 * re-exports all of this. See `README.md` beside this file.
 */
export type {
  Consistency,
  Durability,
  ErrorBody,
  ErrorResponse,
  ExecuteRequest,
  ExecuteResponse,
  JsonValue,
  MemberStatus,
  NodeAddress,
  NodeRole,
  Position,
  QueryRequest,
  QueryResponse,
  QueryStatementResult,
  ReadPosition,
  ResultValue,
  SqlParams,
  SqlValue,
  Statement,
  StatementObject,
  StatementResult,
  StatementTuple,
  StatusResponse,
} from "../api/api-types.ts";
export { Batch } from "./batch.ts";
export { Client, connect, type ExecuteResult, type QueryRows } from "./client.ts";
export {
  BatonClientError,
  type BatonClientErrorCode,
  ClientErrorCode,
  isBatonClientError,
} from "./client-error.ts";
export type {
  CallOptions,
  ConnectOptions,
  ExecuteOptions,
  QueryOptions,
  StatusOptions,
} from "./connect-options.ts";
export type { FetchLike } from "./http-exchange.ts";
export type { RetryOptions } from "./retry-policy.ts";
export { Session, type SessionOptions } from "./session.ts";
export { rowsAsObjects, type StatementsInput } from "./statements.ts";
