/**
 * Where a simulated cluster keeps its stores: a directory of its own under a memory file system when
 * there is one (the runs measure logic, not disks), named after the seed and the process.
 *
 * A run removes its directory when it is disposed, but a process that is killed mid-run (a timeout,
 * an interrupted campaign) cannot. So the first run of each process removes the directories of
 * processes that no longer exist; the pid in the name says whose a directory is.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const prefix = "baton-sim-";
const owner = /^baton-sim-\d+-p(\d+)-/;
let swept = false;

/** The memory file system when there is one, else the system's temporary directory. */
export function simTempRoot(): string {
  return fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
}

/** Creates the directory of one run of `seed` (after sweeping dead processes' ones, once). */
export function createRunDirectory(seed: number, root = simTempRoot()): string {
  if (!swept) {
    swept = true;
    removeDeadRunDirectories(root);
  }
  return fs.mkdtempSync(path.join(root, `${prefix}${seed}-p${process.pid}-`));
}

/** Removes every run directory under `root` whose process no longer exists; returns their names. */
export function removeDeadRunDirectories(root: string): string[] {
  const removed: string[] = [];
  for (const name of fs.readdirSync(root)) {
    const pid = owner.exec(name)?.[1];
    if (pid === undefined || processExists(Number(pid))) continue;
    fs.rmSync(path.join(root, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
