import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { sliceParts, writeAllParts } from "./file-sync.ts";

test("sliceParts: any range of parts taken as one sequence, as views", () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 20 }), { maxLength: 8 }),
      fc.nat(),
      fc.nat(),
      (parts, a, b) => {
        const whole = Buffer.concat(parts);
        const start = whole.length === 0 ? 0 : a % (whole.length + 1);
        const end = start + (whole.length === start ? 0 : b % (whole.length - start + 1));
        const slices = sliceParts(parts, start, end);
        assert.deepEqual(Buffer.concat(slices), whole.subarray(start, end));
        assert.ok(
          slices.every((slice) => parts.some((part) => part.buffer === slice.buffer)),
          "views, not copies",
        );
      },
    ),
  );
});

test("writeAllParts writes the parts one after another at the position", async (t) => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-file-sync-"));
  t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  const file = path.join(directory, "parts");
  fs.writeFileSync(file, Buffer.alloc(4, 0xee));
  const fd = fs.openSync(file, "r+");
  try {
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    await writeAllParts(fd, [Buffer.from("ab"), new Uint8Array(0), big, Buffer.from("cd")], 2);
    const content = fs.readFileSync(file);
    assert.equal(content.length, 2 + 2 + big.length + 2);
    assert.deepEqual(content.subarray(0, 4), Buffer.from([0xee, 0xee, 0x61, 0x62]));
    assert.ok(content.subarray(4, 4 + big.length).equals(big));
    assert.equal(content.subarray(-2).toString(), "cd");
  } finally {
    fs.closeSync(fd);
  }
});
