/**
 * Always-on assertions.
 *
 * An assertion states an invariant of the program itself. When one fails the process is wrong, not
 * the input: the node must stop rather than continue and corrupt replicated state. Operating errors
 * (bad SQL, not leader, timeouts) are never assertions; they are `BatonError` values with a code.
 */

export class AssertionError extends Error {
  override name = "AssertionError";
}

/** Throws an `AssertionError` when `condition` is false. Never compiled out. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Marks a branch that exhaustive type checking proves unreachable. */
export function unreachable(value: never, message = "unreachable"): never {
  throw new AssertionError(`${message}: ${String(value)}`);
}
