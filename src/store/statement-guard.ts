/**
 * The statement policy, enforced through SQLite's authorizer rather than by matching SQL text.
 *
 * SQLite calls the authorizer for every action a statement will take while it compiles it (and for a
 * few actions while it runs, such as the PRAGMA behind `pragma_table_info`). The guard answers for
 * client statements only: in `internal` mode (the store's own statements, changeset application,
 * trigger suspension) everything is allowed. While a client statement compiles and runs, the guard
 * also classifies it: DDL or not, whether it writes, which tables it creates, drops or alters.
 *
 * What is refused and why (the README lists the same):
 * - ATTACH/DETACH: a replicated database is exactly one file.
 * - Transaction control: the batch is the transaction.
 * - TEMP objects and virtual tables: sessions do not record them, so they would not replicate.
 * - ANALYZE, REINDEX, writes to `sqlite_*` tables (other than SQLite's own DDL bookkeeping) and
 *   anything touching the store's `_baton_*` tables: node-local or store-owned state.
 * - Statements the authorizer never hears about (VACUUM) are handled by the caller, which sees that
 *   no callback came (client-statement.ts).
 * - PRAGMAs other than read-only schema introspection; `load_extension` and `fts3_tokenizer`.
 * - In query mode, any write or schema change (`NOT_A_QUERY`).
 *
 * Invariant: the callback never throws (an exception would escape into SQLite); it records the first
 * denial and returns SQLITE_DENY, and the store turns that record into a `BatonError`.
 */
import { constants } from "node:sqlite";
import { assert } from "../lib/assert.ts";

export type GuardMode = "internal" | "execute" | "query";

export type Denial = { readonly code: "FORBIDDEN_STATEMENT" | "NOT_A_QUERY"; readonly message: string };

/** What the guard learned about the client statement being compiled and run. */
export type StatementClass = {
  callbacks: number;
  /** The statement changes the schema (top level, not inside a trigger). */
  ddl: boolean;
  /** The statement inserts, updates or deletes rows of a user table at top level. */
  writes: boolean;
  readonly createdTables: string[];
  readonly droppedTables: string[];
  readonly alteredTables: string[];
  denial: Denial | null;
};

/** Read-only schema introspection; their argument is an object name, never a setting. */
const introspectionPragmas = new Set([
  "table_info",
  "table_xinfo",
  "table_list",
  "index_list",
  "index_info",
  "index_xinfo",
  "foreign_key_list",
]);

const disabledFunctions = new Set(["load_extension", "fts3_tokenizer"]);

const schemaTables = new Set(["sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"]);

export const reservedPrefix = "_baton_";

export function isReservedName(name: string | null): boolean {
  return (name ?? "").toLowerCase().startsWith(reservedPrefix);
}

function isInternalName(name: string | null): boolean {
  return (name ?? "").toLowerCase().startsWith("sqlite_");
}

const C = constants;

const alwaysForbidden: ReadonlyMap<number, string> = new Map([
  [C.SQLITE_ATTACH, "ATTACH is not allowed: a replicated database is exactly one file"],
  [C.SQLITE_DETACH, "DETACH is not allowed: a replicated database is exactly one file"],
  [
    C.SQLITE_TRANSACTION,
    "transaction control (BEGIN, COMMIT, ROLLBACK) is not allowed: the batch is one transaction",
  ],
  [C.SQLITE_SAVEPOINT, "SAVEPOINT and RELEASE are not allowed: the batch is one transaction"],
  [
    C.SQLITE_CREATE_VTABLE,
    "virtual tables (CREATE VIRTUAL TABLE, e.g. FTS5) are not replicated and not allowed",
  ],
  [C.SQLITE_DROP_VTABLE, "virtual tables are not replicated and not allowed"],
  [C.SQLITE_ANALYZE, "ANALYZE writes node-local statistics and is not allowed"],
  [C.SQLITE_CREATE_TEMP_TABLE, "TEMP tables are not replicated and not allowed"],
  [C.SQLITE_CREATE_TEMP_INDEX, "TEMP objects are not replicated and not allowed"],
  [C.SQLITE_CREATE_TEMP_TRIGGER, "TEMP triggers are not replicated and not allowed"],
  [C.SQLITE_CREATE_TEMP_VIEW, "TEMP views are not replicated and not allowed"],
  [C.SQLITE_DROP_TEMP_TABLE, "TEMP objects are not replicated and not allowed"],
  [C.SQLITE_DROP_TEMP_INDEX, "TEMP objects are not replicated and not allowed"],
  [C.SQLITE_DROP_TEMP_TRIGGER, "TEMP objects are not replicated and not allowed"],
  [C.SQLITE_DROP_TEMP_VIEW, "TEMP objects are not replicated and not allowed"],
]);

/** Actions that change the schema of the main database: the statement is DDL. */
const schemaActions = new Set([
  C.SQLITE_CREATE_TABLE,
  C.SQLITE_CREATE_INDEX,
  C.SQLITE_CREATE_TRIGGER,
  C.SQLITE_CREATE_VIEW,
  C.SQLITE_DROP_TABLE,
  C.SQLITE_DROP_INDEX,
  C.SQLITE_DROP_TRIGGER,
  C.SQLITE_DROP_VIEW,
  C.SQLITE_ALTER_TABLE,
]);

const rowActions = new Set([C.SQLITE_INSERT, C.SQLITE_UPDATE, C.SQLITE_DELETE]);

function emptyClass(): StatementClass {
  return {
    callbacks: 0,
    ddl: false,
    writes: false,
    createdTables: [],
    droppedTables: [],
    alteredTables: [],
    denial: null,
  };
}

export class StatementGuard {
  #mode: GuardMode = "internal";
  #current: StatementClass = emptyClass();

  /** The authorizer callback to install with `setAuthorizer`. */
  readonly authorize = (
    action: number,
    first: string | null,
    second: string | null,
    database: string | null,
    triggerOrView: string | null,
  ): number => {
    if (this.#mode === "internal") return C.SQLITE_OK;
    this.#current.callbacks++;
    const denial = this.#judge(action, first, second, database, triggerOrView);
    if (denial === null) return C.SQLITE_OK;
    this.#current.denial ??= denial;
    return C.SQLITE_DENY;
  };

  get mode(): GuardMode {
    return this.#mode;
  }

  /** A fresh, empty classification for one client statement. */
  newClass(): StatementClass {
    return emptyClass();
  }

  /**
   * Runs `work` (compiling or running one client statement) with every authorizer callback judged in
   * `mode` and attributed to `statementClass`; outside such a call everything is internal.
   */
  judging<T>(mode: Exclude<GuardMode, "internal">, statementClass: StatementClass, work: () => T): T {
    assert(this.#mode === "internal", `guard asked to judge ${mode} while judging ${this.#mode}`);
    this.#mode = mode;
    this.#current = statementClass;
    try {
      return work();
    } finally {
      this.#mode = "internal";
    }
  }

  #judge(
    action: number,
    first: string | null,
    second: string | null,
    database: string | null,
    triggerOrView: string | null,
  ): Denial | null {
    const forbidden = alwaysForbidden.get(action);
    if (forbidden !== undefined) return { code: "FORBIDDEN_STATEMENT", message: forbidden };
    if (action === C.SQLITE_SELECT || action === C.SQLITE_READ || action === C.SQLITE_RECURSIVE) return null;
    // CREATE INDEX reports building its new index as a REINDEX; a REINDEX statement stands alone.
    if (action === C.SQLITE_REINDEX) {
      return this.#current.ddl
        ? null
        : { code: "FORBIDDEN_STATEMENT", message: "REINDEX is node-local maintenance and is not allowed" };
    }
    if (action === C.SQLITE_FUNCTION) return judgeFunction(second);
    if (action === C.SQLITE_PRAGMA) return judgePragma(first, second);
    const isSchema = schemaActions.has(action);
    if (!isSchema && !rowActions.has(action)) {
      return {
        code: "FORBIDDEN_STATEMENT",
        message: `statement takes an action the store does not allow (${action})`,
      };
    }
    if (this.#mode === "query") {
      return {
        code: "NOT_A_QUERY",
        message: "statement writes or changes the schema; send it as an execute",
      };
    }
    return isSchema
      ? this.#judgeSchema(action, first, second, database, triggerOrView)
      : this.#judgeRows(first, database, triggerOrView);
  }

  #judgeSchema(
    action: number,
    first: string | null,
    second: string | null,
    database: string | null,
    triggerOrView: string | null,
  ): Denial | null {
    // For ALTER TABLE the first argument is the database name and the second the table; for the
    // others the first is the object and the second, for indexes and triggers, its table.
    const name = action === C.SQLITE_ALTER_TABLE ? second : first;
    const table = action === C.SQLITE_ALTER_TABLE ? null : second;
    if (action !== C.SQLITE_ALTER_TABLE && database !== "main") {
      return {
        code: "FORBIDDEN_STATEMENT",
        message: "TEMP objects and objects outside the main database are not replicated",
      };
    }
    if (isReservedName(name) || isReservedName(table)) {
      return {
        code: "FORBIDDEN_STATEMENT",
        message: `names starting with ${reservedPrefix} belong to the store`,
      };
    }
    // SQLite's own side objects (sqlite_sequence, sqlite_autoindex_*) appear only after the user's
    // own schema action in the same statement; alone they mean ANALYZE or a direct attempt.
    if ((isInternalName(name) || isInternalName(table)) && !this.#current.ddl) {
      return {
        code: "FORBIDDEN_STATEMENT",
        message: `statement would change internal object ${name}; ANALYZE and sqlite_* objects are not replicated`,
      };
    }
    if (triggerOrView !== null || isInternalName(name)) return null;
    this.#current.ddl = true;
    if (action === C.SQLITE_CREATE_TABLE) this.#current.createdTables.push(name!);
    if (action === C.SQLITE_DROP_TABLE) this.#current.droppedTables.push(name!);
    if (action === C.SQLITE_ALTER_TABLE) this.#current.alteredTables.push(name!);
    return null;
  }

  #judgeRows(table: string | null, database: string | null, triggerOrView: string | null): Denial | null {
    if (isReservedName(table)) {
      return {
        code: "FORBIDDEN_STATEMENT",
        message: `table ${table} belongs to the store and clients may not write it`,
      };
    }
    // SQLite refuses direct writes to the schema table itself; its own DDL bookkeeping writes it.
    if (table !== null && schemaTables.has(table.toLowerCase())) return null;
    if (isInternalName(table) && !this.#current.ddl) {
      return {
        code: "FORBIDDEN_STATEMENT",
        message: `writes to internal table ${table} are not allowed (AUTOINCREMENT counters replicate by themselves)`,
      };
    }
    if (triggerOrView === null && database === "main" && !isInternalName(table)) this.#current.writes = true;
    return null;
  }
}

function judgeFunction(name: string | null): Denial | null {
  if (name !== null && disabledFunctions.has(name.toLowerCase())) {
    return { code: "FORBIDDEN_STATEMENT", message: `function ${name} is disabled` };
  }
  return null;
}

function judgePragma(name: string | null, argument: string | null): Denial | null {
  if (name !== null && introspectionPragmas.has(name.toLowerCase())) return null;
  const shown = argument === null ? `PRAGMA ${name}` : `PRAGMA ${name} = ${argument}`;
  return {
    code: "FORBIDDEN_STATEMENT",
    message: `${shown} is not allowed; only read-only schema introspection pragmas are (${[...introspectionPragmas].join(", ")})`,
  };
}
