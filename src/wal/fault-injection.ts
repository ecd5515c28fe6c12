/**
 * TEST-ONLY fsync fault injection, for the real-process fault campaign (`test/nemesis`). Never set
 * these variables on a node that holds data you care about.
 *
 * The hook stays off, and the log syncs as usual, unless BOTH variables are set:
 *  - `BATON_TEST_FAULT_INJECTION=unsafe-test-only`, the explicit opt-in;
 *  - `BATON_TEST_FSYNC_FAULT_FILE=/some/path`, a control file read before every fsync and every
 *    durable append write of the running log (recovery at open does not go through it).
 * A control file named without the opt-in is refused (`BAD_CONFIG`, `baton start` exits 2), so a
 * leftover variable cannot quietly slow down or break a node.
 *
 * The control file holds one line, which the campaign rewrites while the node runs:
 *  - missing or empty: sync normally;
 *  - `delay <ms>`: wait that long, then sync or write (a slow disk);
 *  - `fail`: do not sync or write; reject with `EIO` (a failed fsync). The log becomes unusable and
 *    the node takes its fatal path (exit 1), so nothing written since the last good sync is
 *    acknowledged.
 */
import fs from "node:fs";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { type DurableWrite, defaultDurableWrite, defaultSyncFile, type SyncFile } from "./file-sync.ts";
import type { WalOptions } from "./wal.ts";

export const faultInjectionOptIn = { name: "BATON_TEST_FAULT_INJECTION", value: "unsafe-test-only" } as const;
export const fsyncFaultFileVariable = "BATON_TEST_FSYNC_FAULT_FILE";

/** A longer delay in the control file is taken as this: a bound on any single injected wait. */
const injectedDelayMsMax = 60_000;

export type FsyncFault =
  | { readonly kind: "none" }
  | { readonly kind: "delay"; readonly delayMs: number }
  | { readonly kind: "fail" };

/** Reads one control line; anything unreadable is no fault (the campaign writes only valid lines). */
export function parseFsyncFault(text: string): FsyncFault {
  const line = text.trim();
  if (line === "fail") return { kind: "fail" };
  const delay = /^delay (\d+)$/.exec(line);
  if (delay !== null) return { kind: "delay", delayMs: Math.min(Number(delay[1]), injectedDelayMsMax) };
  return { kind: "none" };
}

/** The log's options for this environment: `{}` (real fsync) unless the test-only hook is opted into. */
export function walFaultOptions(environment: Readonly<Record<string, string | undefined>>): WalOptions {
  const controlFile = environment[fsyncFaultFileVariable];
  if (controlFile === undefined || controlFile === "") return {};
  if (environment[faultInjectionOptIn.name] !== faultInjectionOptIn.value)
    throw new BatonError(
      ErrorCode.BAD_CONFIG,
      `${fsyncFaultFileVariable} is set but ${faultInjectionOptIn.name} is not ${faultInjectionOptIn.value}: ` +
        "fsync fault injection is for tests only",
    );
  process.stderr.write(`TEST-ONLY fsync fault injection is active, controlled by ${controlFile}\n`);
  const injected = injectFault(controlFile);
  return {
    syncFile: async (fd) => {
      await injected();
      await defaultSyncFile(fd);
    },
    durableWrite: async (fd, parts, position) => {
      await injected();
      await defaultDurableWrite(fd, parts, position);
    },
  } satisfies { syncFile: SyncFile; durableWrite: DurableWrite };
}

/** Reads the control file: rejects with `EIO` on `fail`, waits on `delay`. */
function injectFault(controlFile: string): () => Promise<void> {
  return async () => {
    const text = await fs.promises.readFile(controlFile, "utf8").catch(() => "");
    const fault = parseFsyncFault(text);
    if (fault.kind === "fail")
      throw Object.assign(new Error("EIO: injected fsync failure (test-only fault injection)"), {
        code: "EIO",
      });
    if (fault.kind === "delay") await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
  };
}
