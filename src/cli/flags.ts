/** Strict flag parsing shared by the subcommands: an unknown or malformed flag is BAD_CONFIG (exit 2). */
import { type ParseArgsOptionsConfig, parseArgs } from "node:util";
import { BatonError, ErrorCode } from "../lib/errors.ts";

export function parseFlags(
  argv: string[],
  options: ParseArgsOptionsConfig,
): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | undefined
    >;
  } catch (error) {
    throw new BatonError(ErrorCode.BAD_CONFIG, (error as Error).message);
  }
}

/**
 * `baton <command> ACTION [ID] [--flags]`: the action, an optional positional id, and the flags;
 * null when there is no action or help was asked for (the help is then printed).
 */
export function parseAction(
  argv: string[],
  help: string,
  options: ParseArgsOptionsConfig,
): {
  action: string;
  positional: string | undefined;
  flags: Record<string, string | boolean | undefined>;
} | null {
  const [action, ...rest] = argv;
  if (action === undefined || action === "--help" || action === "-h") {
    process.stdout.write(help);
    return null;
  }
  const positional = rest[0] !== undefined && !rest[0].startsWith("--") ? rest.shift() : undefined;
  return { action, positional, flags: parseFlags(rest, options) };
}
