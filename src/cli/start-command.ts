/**
 * `baton start`: runs one node until SIGTERM or SIGINT, then stops it gracefully (exit 0). The
 * node's fatal path (a failed fsync, a committed entry that does not apply, an assertion or any
 * other bug) stops the process with exit code 1: it must not keep serving.
 */

import { createLogger } from "./logger.ts";
import { launchNode } from "./serve-node.ts";
import { resolveStartConfig, startHelp } from "./start-config.ts";
import { lowerV8WorkerPriority } from "./v8-worker-priority.ts";

export async function startCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${startHelp()}\n`);
    return 0;
  }
  const config = resolveStartConfig(argv, process.env);
  const format = config.logFormat === "auto" ? (process.stdout.isTTY ? "pretty" : "json") : config.logFormat;
  const logger = createLogger({ level: config.logLevel, format, node: config.id });
  const log = (
    level: "debug" | "info" | "warn" | "error",
    event: string,
    fields: Record<string, unknown>,
  ): void => logger[level](fields, event);
  const workers = lowerV8WorkerPriority();
  log(workers.failed.length > 0 ? "warn" : "debug", "node.v8-workers-lowered", { ...workers });
  let exitCode = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let stopRunning: (() => Promise<void>) | null = null;
  let fatalBeforeStart = false;
  const running = await launchNode(config, log, (error) => {
    logger.fatal({ error: error.message, code: (error as { code?: unknown }).code ?? null }, "node.fatal");
    exitCode = 1;
    if (stopRunning === null) fatalBeforeStart = true;
    else void stopRunning().finally(finish);
  });
  stopRunning = running.stop;
  if (fatalBeforeStart) void running.stop().finally(finish);
  const onSignal = (signal: string): void => {
    log("info", "node.signal", { signal });
    void running.stop().finally(finish);
  };
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  process.once("SIGINT", () => onSignal("SIGINT"));
  await finished;
  logger.flush();
  return exitCode;
}
