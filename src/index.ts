/**
 * `batondb`: the package root, for applications that talk to a Baton cluster.
 *
 * It is the client library (`batondb/client`, the same exports) plus the bounds a request must
 * respect. It imports only `src/client` and `src/api`, which import nothing of the server, so
 * importing the package never loads the node, its store or SQLite (the tidy test enforces the rule).
 * Running a node is the CLI's job: `baton start`.
 */

export { type RequestLimits, requestLimits } from "./api/request-limits.ts";
export * from "./client/index.ts";
