/**
 * The statement collector behind `client.transaction(fn)`.
 *
 * A `Batch` is NOT an interactive transaction: nothing is sent while `fn` runs, so `fn` cannot read
 * the effects of its own statements or branch on them. When `fn` returns, every statement it added is
 * sent as ONE `execute` call, which the leader runs as one SQLite transaction: all of them apply, or
 * none. If `fn` throws, nothing is sent. Once sent, the batch is sealed and refuses more statements,
 * which catches a statement added after an `await` that outlived `fn`.
 */

import type { Statement } from "../api/api-types.ts";
import { assert } from "../lib/assert.ts";
import { BatonClientError } from "./client-error.ts";
import { checkStatement, statementsPerCallMax } from "./statements.ts";

export class Batch {
  readonly #statements: Statement[] = [];
  #sealed = false;

  /**
   * Adds one statement in any form — here an array is unambiguous: it is the tuple form
   * `["sql", ...params]`. Returns the index of its result in the `execute` answer.
   */
  add(statement: Statement): number {
    if (this.#sealed)
      throw new BatonClientError("BAD_REQUEST", "the batch was already sent; add statements inside fn");
    if (this.#statements.length >= statementsPerCallMax) {
      throw new BatonClientError("BAD_REQUEST", `a batch holds at most ${statementsPerCallMax} statements`);
    }
    checkStatement(statement, this.#statements.length + 1);
    this.#statements.push(statement);
    return this.#statements.length - 1;
  }

  /** How many statements the batch holds so far. */
  get size(): number {
    return this.#statements.length;
  }

  /** Closes the batch to further statements and returns them, in the order they were added. */
  seal(): readonly Statement[] {
    assert(!this.#sealed, "a batch is sealed once");
    this.#sealed = true;
    assert(this.#statements.length <= statementsPerCallMax, "the batch outgrew its bound");
    return this.#statements;
  }
}
