/**
 * The watchdog of a node's helper process (a query process, the write sandbox): a thread that
 * kills the process when the node that started it is gone.
 *
 * Why a thread: an idle helper exits when its IPC channel closes, but a busy one cannot notice (its
 * event loop is inside SQLite), so another thread checks the parent's pid every `pollMs` and kills
 * this process (SIGKILL, by its own pid) once the parent changed, even if the node itself was
 * SIGKILLed.
 */
import { Worker } from "node:worker_threads";

const watchdogSource = `
const { workerData } = require("node:worker_threads");
setInterval(() => {
  if (process.ppid !== workerData.parentPid) process.kill(process.pid, "SIGKILL");
}, workerData.pollMs);
`;

/** Starts the watchdog thread; resolves once it runs (it must run before any statement can block). */
export function startParentWatchdog(pollMs: number): Promise<void> {
  const watchdog = new Worker(watchdogSource, {
    eval: true,
    workerData: { parentPid: process.ppid, pollMs },
  });
  watchdog.unref();
  return new Promise((resolve, reject) => {
    watchdog.once("online", resolve);
    watchdog.once("error", reject);
  });
}
