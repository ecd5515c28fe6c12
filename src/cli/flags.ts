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
