import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type TestContext, test } from "node:test";
import { syncWriteBytesMax, writeAllParts, writeParts } from "./file-sync.ts";

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

test("writeParts writes small parts on the calling thread and larger ones through the thread pool", async (t) => {
  const { file, fd } = openedFile(t, Buffer.alloc(3, 0xee));
  const small = [
    Buffer.from("ab"),
    new Uint8Array(0),
    Buffer.alloc(syncWriteBytesMax - 4, 5),
    Buffer.from("cd"),
  ];
  assert.equal(writeParts(fd, small, 1), undefined, "written before the call returns");
  const afterSmall = fs.readFileSync(file);
  assert.equal(afterSmall.length, 1 + syncWriteBytesMax);
  assert.deepEqual(afterSmall.subarray(0, 3), Buffer.from([0xee, 0x61, 0x62]));
  assert.equal(afterSmall.subarray(-2).toString(), "cd");
  const large = [Buffer.alloc(syncWriteBytesMax, 9), Buffer.from("z")];
  const pending = writeParts(fd, large, afterSmall.length);
  assert.ok(pending instanceof Promise, "more than syncWriteBytesMax goes to the thread pool");
  await pending;
  const content = fs.readFileSync(file);
  assert.equal(content.length, afterSmall.length + syncWriteBytesMax + 1);
  assert.equal(content.at(-2), 9);
  assert.equal(content.subarray(-1).toString(), "z");
});
