/**
 * Golden scenario tests: each `testdata/*.txt` file is a script of commands whose full trace
 * (every Effects, message and event) is the expected output, in the datadriven format:
 *
 *     command arg arg
 *     ----
 *     expected output lines
 *
 * Blocks are separated by blank lines; `#` lines are comments. Run with `REWRITE_GOLDEN=1` to
 * rewrite the expected outputs from the current behaviour (then review the diff like code).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { GoldenHarness } from "./golden-harness.ts";

type Block = { readonly comments: string[]; readonly command: string; readonly expected: string };

function parse(text: string, file: string): Block[] {
  const lines = text.split("\n");
  const blocks: Block[] = [];
  let comments: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] ?? "";
    if (line.trim() === "" || line.startsWith("#")) {
      comments.push(line);
      i++;
      continue;
    }
    assert.equal(lines[i + 1], "----", `${file}:${i + 2}: expected ---- after the command`);
    const output: string[] = [];
    i += 2;
    while (i < lines.length && (lines[i] ?? "") !== "") output.push(lines[i++] ?? "");
    blocks.push({ comments, command: line, expected: output.join("\n") });
    comments = [];
  }
  return blocks;
}

function render(blocks: readonly Block[], outputs: readonly string[]): string {
  const parts: string[] = [];
  blocks.forEach((block, i) => {
    parts.push(...block.comments, block.command, "----", outputs[i] ?? "");
  });
  return `${parts.join("\n").replace(/\n+$/, "")}\n`;
}

const directory = join(import.meta.dirname, "testdata");
const rewrite = process.env.REWRITE_GOLDEN === "1";

for (const file of readdirSync(directory)
  .filter((name) => name.endsWith(".txt"))
  .sort()) {
  test(`golden scenario ${file}`, () => {
    const path = join(directory, file);
    const blocks = parse(readFileSync(path, "utf8"), file);
    const harness = new GoldenHarness();
    const outputs: string[] = [];
    for (const block of blocks) {
      const [command = "", ...args] = block.command.trim().split(/\s+/);
      const output = harness.run(command, args);
      outputs.push(output);
      if (!rewrite) assert.equal(output, block.expected, `${file}: output of "${block.command}" differs`);
    }
    if (rewrite) writeFileSync(path, render(blocks, outputs));
  });
}
