/**
 * A query process: the entry file of the small Node process (`process.execPath`, type-stripped
 * TypeScript) in which the node runs client queries, so that a query it has to stop can be stopped
 * by killing this process (node:sqlite offers no interrupt, and a worker thread cannot be stopped
 * while SQLite runs a statement).
 *
 * It opens its own read-only connection to the store's database (`openReadSide`: the same guard,
 * length limit and settings as the store's read connection; WAL mode lets readers in other
 * processes read committed state) and runs one query at a time with `runQuery`, the store's own
 * query code, replying over the IPC channel (`query-process-protocol.ts`). It reopens its
 * connection when a snapshot restore has replaced the file (`StoreFile`).
 *
 * It must never outlive its node. An idle process exits when the IPC channel closes. A busy one
 * cannot notice that (its event loop is inside SQLite), so a watchdog thread checks the parent's
 * pid and kills this process when the node is gone, even if the node itself was SIGKILLed. Ctrl-C
 * in a terminal reaches the whole process group; the node decides when its query processes stop,
 * so SIGINT is ignored here.
 */
import fs from "node:fs";
import { openReadSide, type ReadSide } from "./connections.ts";
import { startParentWatchdog } from "./process-watchdog.ts";
import {
  errorReply,
  type QueryProcessSettings,
  type QueryReply,
  type QueryRequest,
} from "./query-process-protocol.ts";
import { runQuery } from "./query-run.ts";

/**
 * The read connection, following the store's file: a snapshot restore renames a new database over
 * the old one, and a connection opened before would read the old file for ever. The node advances
 * its applied index past the restored state only after the rename, and sends a query only after
 * that, so checking the file's identity before each query (one `stat`) is enough to never read
 * the replaced file for a query that needs the restored state.
 */
class StoreFile {
  readonly #settings: QueryProcessSettings;
  #side: ReadSide;
  #inode: bigint;

  constructor(settings: QueryProcessSettings) {
    this.#settings = settings;
    this.#side = openReadSide(settings.path, settings.busyTimeoutMs); // Names a missing file clearly.
    this.#inode = this.#inodeNow();
  }

  current(): ReadSide {
    const inode = this.#inodeNow();
    if (inode !== this.#inode) {
      this.#side.read.close();
      this.#inode = inode;
      this.#side = openReadSide(this.#settings.path, this.#settings.busyTimeoutMs);
    }
    return this.#side;
  }

  #inodeNow(): bigint {
    return fs.statSync(this.#settings.path, { bigint: true }).ino;
  }
}

function send(reply: QueryReply): void {
  process.send?.(reply);
}

async function main(): Promise<void> {
  const settings = JSON.parse(process.argv[2] ?? "null") as QueryProcessSettings;
  if (process.send === undefined) throw new Error("a query process runs only as a node's child, with IPC");
  const file = new StoreFile(settings);
  process.on("SIGINT", () => {});
  process.on("disconnect", () => process.exit(0));
  process.on("message", (message: QueryRequest) => {
    try {
      send({
        type: "result",
        id: message.id,
        result: runQuery(file.current(), message.statements, settings.limits, message.options),
      });
    } catch (error) {
      send(errorReply(message.id, error));
    }
  });
  await startParentWatchdog(settings.watchdogPollMs);
  send({ type: "ready" });
}

await main();
