/**
 * Tidy test for the consensus core: it must stay pure and small (DESIGN.md §1 and §4).
 *
 * Every non-test module in src/consensus is scanned for I/O, clocks, randomness, timers and
 * promises; its imports may reach only src/lib, src/types and its own directory; files stay under
 * 500 lines and functions under 70.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

const directory = import.meta.dirname;
const modules = readdirSync(directory)
  .filter((name) => name.endsWith(".ts") && !name.endsWith(".test.ts"))
  .map((name) => ({ name, text: readFileSync(join(directory, name), "utf8") }));

/** Source without comments and string literals, so that prose cannot trip the scan. */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/\/\/.*$/gm, "")
    .replace(/"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g, '""');
}

const banned: readonly [RegExp, string][] = [
  [/\bDate\b/, "Date (time arrives as tick inputs)"],
  [/\bMath\.random\b/, "Math.random (randomness comes from the injected Prng)"],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/, "timers"],
  [/\b(Promise|async|await)\b/, "promises"],
  [/\bprocess\b/, "process"],
  [/\brequire\s*\(/, "require"],
  [/\bperformance\b/, "performance clock"],
  [/\bcrypto\b/, "crypto"],
];

test("the consensus modules exist and are scanned", () => {
  assert.ok(modules.length >= 10, `only ${modules.length} modules found`);
  assert.ok(modules.some((module) => module.name === "raft-core.ts"));
});

test("consensus modules use no I/O, clock, randomness, timers or promises", () => {
  for (const { name, text } of modules) {
    const source = code(text);
    for (const [pattern, what] of banned) assert.doesNotMatch(source, pattern, `${name} uses ${what}`);
  }
});

test("consensus modules import only src/lib, src/types and each other", () => {
  for (const { name, text } of modules) {
    for (const match of text.matchAll(/^import\s[^;]*?from\s+"([^"]+)"/gm)) {
      const target = match[1] ?? "";
      const allowed =
        /^\.\/[a-z0-9-]+\.ts$/.test(target) || /^\.\.\/(lib|types)\/[a-z0-9-]+\.ts$/.test(target);
      assert.ok(allowed, `${name} imports ${target}`);
    }
    assert.doesNotMatch(text, /\bimport\s*\(/, `${name} uses a dynamic import`);
  }
});

test("consensus files stay under 500 lines and functions under 70", () => {
  for (const { name, text } of modules) {
    const lines = text.split("\n");
    assert.ok(lines.length <= 500, `${name} has ${lines.length} lines`);
    // Formatter output puts a function's closing brace at the indentation of its first line.
    const declaration = /^(\s*)(export\s+)?function\s+\w+/;
    const method = /^(\s*)(static\s+|private\s+|get\s+)*#?\w+\s*(<[^>]*>)?\(.*\)(\s*:\s*[^={]+)?\s*\{\s*$/;
    lines.forEach((line, i) => {
      const match = declaration.exec(line) ?? method.exec(line);
      if (match === null || /^\s*(if|for|while|switch|catch)\b/.test(line)) return;
      const closing = `${match[1]}}`;
      let end = i + 1;
      while (end < lines.length && lines[end] !== closing) end++;
      assert.ok(end - i + 1 <= 70, `${name}:${i + 1} function spans ${end - i + 1} lines`);
    });
  }
});
