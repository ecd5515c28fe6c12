import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type TestContext, test } from "node:test";
import { writeAllParts } from "./file-sync.ts";

/** A file holding `prefix` in a temporary directory removed after the test, open for writing. */
function openedFile(t: TestContext, prefix: Buffer): { file: string; fd: number } {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-file-sync-"));
  t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  const file = path.join(directory, "parts");
  fs.writeFileSync(file, prefix);
  const fd = fs.openSync(file, "r+");
  t.after(() => fs.closeSync(fd));
  return { file, fd };
}

test("writeAllParts writes the parts one after another at the position", async (t) => {
  const { file, fd } = openedFile(t, Buffer.alloc(4, 0xee));
  const big = Buffer.alloc(3 * 1024 * 1024, 7);
  await writeAllParts(fd, [Buffer.from("ab"), new Uint8Array(0), big, Buffer.from("cd")], 2);
  const content = fs.readFileSync(file);
  assert.equal(content.length, 2 + 2 + big.length + 2);
  assert.deepEqual(content.subarray(0, 4), Buffer.from([0xee, 0xee, 0x61, 0x62]));
  assert.ok(content.subarray(4, 4 + big.length).equals(big));
  assert.equal(content.subarray(-2).toString(), "cd");
});
