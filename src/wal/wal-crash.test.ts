import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { crashEntryData } from "./testdata/crash-entry.ts";
import { Wal } from "./wal.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "baton-wal-crash-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const writer = path.join(import.meta.dirname, "testdata", "crash-writer.ts");
const iterations = Number(process.env.BATON_CRASH_ITERATIONS ?? 20);
const childTimeoutMs = 10_000;

/** Runs the writer until it has reported some appends, kills it with SIGKILL, returns the highest index it reported durable. */
function runAndKill(directory: string, killAfterReports: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [writer, directory], { stdio: ["ignore", "pipe", "inherit"] });
    let reported = 0;
    let highest = 0;
    let buffered = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error("crash writer made no progress in time"));
    }, childTimeoutMs);
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        const [word, value] = line.split(" ");
        if (word !== "durable") continue;
        highest = Math.max(highest, Number(value));
        if (++reported === killAfterReports) child.kill("SIGKILL");
      }
    });
    child.on("exit", (_code, signal) => {
      clearTimeout(timer);
      if (signal !== "SIGKILL") return reject(new Error(`writer exited without being killed (${signal})`));
      resolve(highest);
    });
  });
}

test(`SIGKILL during appends never loses an entry reported durable (${iterations} kills)`, async () => {
  const directory = path.join(root, "log");
  let previousLast = 0;
  for (let iteration = 0; iteration < iterations; iteration++) {
    const killAfter = 1 + ((iteration * 7919) % 400);
    const highestReported = await runAndKill(directory, killAfter);
    const { wal, recovered } = Wal.open(directory, { segmentBytesMax: 4096 });
    assert.ok(
      wal.lastIndex >= highestReported,
      `iteration ${iteration}: reported ${highestReported}, recovered ${wal.lastIndex}`,
    );
    assert.ok(wal.lastIndex >= previousLast, "the log never shrinks across crashes");
    for (const entry of recovered.entries) {
      assert.deepEqual(entry.data, crashEntryData(entry.index), `entry ${entry.index} content`);
    }
    assert.equal(recovered.entries.length, wal.lastIndex);
    previousLast = wal.lastIndex;
    await wal.close();
  }
});
