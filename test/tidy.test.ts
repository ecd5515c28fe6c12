/**
 * House rules that code review would otherwise have to remember (DESIGN.md §1 and §4):
 * dependency direction between modules, a pure consensus core, size limits, no focused tests.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

const root = path.resolve(import.meta.dirname, "..");
const fileLinesMax = 500;
const functionLinesMax = 70;

function sourceFiles(directory: string): string[] {
  const absolute = path.join(root, directory);
  if (!fs.existsSync(absolute)) return [];
  const found: string[] = [];
  for (const entry of fs.readdirSync(absolute, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith(".ts")) found.push(path.join(entry.parentPath, entry.name));
  }
  return found.sort();
}

function isTest(file: string): boolean {
  return file.endsWith(".test.ts") || file.includes(`${path.sep}testdata${path.sep}`);
}

function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, "utf8");
  const specifiers: string[] = [];
  for (const match of text.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+["']([^"']+)["']/gms))
    specifiers.push(match[1]!);
  for (const match of text.matchAll(/import\(\s*["']([^"']+)["']\s*\)/g)) specifiers.push(match[1]!);
  return specifiers;
}

/** The top-level `src/` module a file or import specifier lands in, or null outside src. */
function moduleOf(file: string, specifier?: string): string | null {
  const target = specifier === undefined ? file : path.resolve(path.dirname(file), specifier);
  const relative = path.relative(path.join(root, "src"), target);
  if (relative.startsWith("..")) return null;
  return relative.split(path.sep)[0] ?? null;
}

/** For each module, the project modules it may import. */
const allowedImports: Record<string, readonly string[]> = {
  lib: ["lib"],
  types: ["lib", "types"],
  consensus: ["lib", "types", "consensus"],
  wal: ["lib", "types", "wal"],
  store: ["lib", "types", "store"],
  transport: ["lib", "types", "transport"],
  client: ["lib", "client"],
};

test("modules import only what the layering allows", () => {
  const violations: string[] = [];
  for (const file of sourceFiles("src")) {
    const from = moduleOf(file);
    if (from === null || !(from in allowedImports)) continue;
    for (const specifier of importsOf(file)) {
      if (!specifier.startsWith(".")) continue;
      const to = moduleOf(file, specifier);
      if (to !== null && !allowedImports[from]!.includes(to)) {
        violations.push(`${path.relative(root, file)} imports ${specifier}`);
      }
    }
  }
  assert.deepEqual(violations, []);
});

test("the consensus core and lib do no I/O and read no clock or random source", () => {
  const banned = [
    /\bfrom\s+["']node:/,
    /\bDate\b/,
    /Math\.random/,
    /\bset(Timeout|Interval|Immediate)\b/,
    /\bprocess\./,
    /\bawait\b/,
    /\bPromise\b/,
  ];
  const violations: string[] = [];
  for (const file of [...sourceFiles("src/consensus"), ...sourceFiles("src/lib")]) {
    if (isTest(file)) continue;
    const text = fs.readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
    for (const pattern of banned)
      if (pattern.test(text)) violations.push(`${path.relative(root, file)}: ${pattern}`);
  }
  assert.deepEqual(violations, []);
});

test(`source files stay under ${fileLinesMax} lines and functions under ${functionLinesMax}`, () => {
  const violations: string[] = [];
  for (const file of sourceFiles("src")) {
    if (isTest(file)) continue;
    const lines = fs.readFileSync(file, "utf8").split("\n");
    if (lines.length > fileLinesMax) violations.push(`${path.relative(root, file)}: ${lines.length} lines`);
    violations.push(...longFunctions(file, lines));
  }
  assert.deepEqual(violations, []);
});

/** Finds functions and methods (as the formatter lays them out) longer than the limit. */
function longFunctions(file: string, lines: readonly string[]): string[] {
  const found: string[] = [];
  const start =
    /^(\s*)(?:export\s+)?(?:(?:async|static|private|protected|public|readonly|get|set)\s+)*(?:function\s*\*?\s*)?[A-Za-z_$][\w$]*\s*(?:<[^>]*>)?\(.*\)[^=;]*\{\s*$/;
  for (let i = 0; i < lines.length; i++) {
    const match = start.exec(lines[i]!);
    if (match === null || /^\s*(if|for|while|switch|catch|return)\b/.test(lines[i]!)) continue;
    const indent = match[1]!;
    const end = lines.findIndex((line, j) => j > i && line.startsWith(`${indent}}`));
    if (end !== -1 && end - i + 1 > functionLinesMax)
      found.push(`${path.relative(root, file)}:${i + 1}: function of ${end - i + 1} lines`);
  }
  return found;
}

test("no test is focused with .only", () => {
  const violations: string[] = [];
  for (const file of [...sourceFiles("src"), ...sourceFiles("test")]) {
    if (!isTest(file)) continue;
    if (/\b(it|test|describe)\.only\(|\{\s*only:\s*true/.test(fs.readFileSync(file, "utf8")))
      violations.push(file);
  }
  assert.deepEqual(violations, []);
});
