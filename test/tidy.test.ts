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

/**
 * For each top-level entry under `src/`, the project modules it may import (DESIGN.md §1): the pure
 * modules import only `lib` and `types`; `node` wires them; the outer layers sit on `node`'s public
 * interface; `api` (wire types, request validation) is shared by server and client, and the client
 * reaches nothing of the server. `index.ts` is the package root, which must not pull in server code.
 */
const allowedImports: Readonly<Record<string, readonly string[]>> = {
  lib: ["lib"],
  types: ["lib", "types"],
  api: ["lib", "api"],
  consensus: ["lib", "types", "consensus"],
  wal: ["lib", "types", "wal"],
  store: ["lib", "types", "store"],
  transport: ["lib", "types", "transport"],
  node: ["lib", "types", "api", "consensus", "wal", "store", "transport", "node"],
  http: ["lib", "api", "node", "http"],
  client: ["lib", "api", "client"],
  cli: ["lib", "api", "node", "http", "client", "cli"],
  "index.ts": ["api", "client"],
};

/** The import violations of one file: relative imports that land in a module its rule does not allow. */
export function importViolations(file: string, specifiers: readonly string[]): string[] {
  const from = moduleOf(file);
  if (from === null) return [];
  const allowed = allowedImports[from];
  if (allowed === undefined) return [`${path.relative(root, file)}: module ${from} has no import rule`];
  return specifiers
    .filter((specifier) => specifier.startsWith("."))
    .filter((specifier) => {
      const to = moduleOf(file, specifier);
      return to !== null && !allowed.includes(to);
    })
    .map((specifier) => `${path.relative(root, file)} imports ${specifier}`);
}

test("every top-level module under src has an import rule", () => {
  const entries = fs.readdirSync(path.join(root, "src"), { withFileTypes: true });
  const modules = entries
    .filter((entry) => entry.isDirectory() || entry.name.endsWith(".ts"))
    .map((entry) => entry.name);
  assert.deepEqual(
    modules.filter((name) => !(name in allowedImports)),
    [],
  );
  assert.deepEqual(importViolations(path.join(root, "src", "newmodule", "x.ts"), []), [
    "src/newmodule/x.ts: module newmodule has no import rule",
  ]);
});

/**
 * Violations being removed, each named exactly so that no new one can hide behind it: the node's
 * launcher still builds the HTTP server; that wiring moves out of `src/node`. Delete an entry once
 * it no longer occurs; the test says so.
 */
const violationsBeingRemoved: readonly string[] = [];

test("modules import only what the layering allows", (t) => {
  const violations: string[] = [];
  for (const file of sourceFiles("src")) violations.push(...importViolations(file, importsOf(file)));
  assert.deepEqual(
    violations.filter((violation) => !violationsBeingRemoved.includes(violation)),
    [],
  );
  for (const fixed of violationsBeingRemoved.filter((violation) => !violations.includes(violation)))
    t.diagnostic(`no longer occurs, delete it from violationsBeingRemoved: ${fixed}`);
});

test("the import rules catch a client that reaches into the server", () => {
  const file = path.join(root, "src", "client", "x.ts");
  assert.deepEqual(importViolations(file, ["../api/api-types.ts", "../lib/errors.ts", "./y.ts"]), []);
  assert.deepEqual(importViolations(file, ["../node/node-service.ts", "../http/http-api.ts"]), [
    "src/client/x.ts imports ../node/node-service.ts",
    "src/client/x.ts imports ../http/http-api.ts",
  ]);
  const packageRoot = path.join(root, "src", "index.ts");
  assert.deepEqual(importViolations(packageRoot, ["./store/store.ts"]), [
    "src/index.ts imports ./store/store.ts",
  ]);
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

/**
 * The node reaches time, timers and randomness only through its runtime (`src/node/runtime.ts`
 * builds the system ones; `launch.ts` wires files and sockets), so the simulator can drive the same
 * code on simulated time.
 */
test("the node layer reads no clock, sets no timer and draws no random number but through its runtime", () => {
  const banned = [
    /\bDate\b/,
    /Math\.random/,
    /\bset(Timeout|Interval|Immediate)\b/,
    /\brandomInt\b/,
    /\bperformance\./,
  ];
  const runtimeFiles = new Set(["runtime.ts", "launch.ts"]);
  const violations: string[] = [];
  for (const file of sourceFiles("src/node")) {
    if (isTest(file) || runtimeFiles.has(path.basename(file))) continue;
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
    violations.push(...longFunctions(path.relative(root, file), lines));
  }
  assert.deepEqual(violations, []);
});

const modifiers = String.raw`(?:(?:export|default|async|static|private|protected|public|readonly|override|get|set)\s+)*`;
const functionName = String.raw`(?:function\s*\*?\s*)?#?[A-Za-z_$][\w$]*\s*(?:<[^>]*>)?`;
/** `name(a: A): R {` on one line. */
const oneLineSignature = new RegExp(String.raw`^(\s*)${modifiers}${functionName}\(.*\)[^=;]*\{\s*$`);
/** `name(` ending its line: the formatter broke the parameter list, one parameter per line. */
const openSignature = new RegExp(String.raw`^(\s*)${modifiers}${functionName}\($`);
const notAFunction = /^\s*(if|for|while|switch|catch|return|await|new|typeof)\b/;
/** A broken parameter list longer than this is not looked for further (it would fail review anyway). */
const signatureLinesMax = 40;

/** Where a signature opened on line `start` closes with `): R {` at its own indent, or -1 if it is a call. */
function signatureEnd(lines: readonly string[], start: number, indent: string): number {
  const last = Math.min(lines.length - 1, start + signatureLinesMax);
  for (let j = start + 1; j <= last; j++) {
    if (!lines[j]!.startsWith(`${indent})`)) continue;
    return /^\s*\)[^=;]*\{\s*$/.test(lines[j]!) ? j : -1;
  }
  return -1;
}

/**
 * Finds functions and methods (as the formatter lays them out, with the signature on one line or
 * broken over several) longer than `functionLinesMax`, counting from the first line of the signature
 * to the closing brace.
 */
export function longFunctions(label: string, lines: readonly string[]): string[] {
  const found: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (notAFunction.test(line)) continue;
    const match = oneLineSignature.exec(line) ?? openSignature.exec(line);
    if (match === null) continue;
    const indent = match[1]!;
    const bodyStart = match[0].endsWith("(") ? signatureEnd(lines, i, indent) : i;
    if (bodyStart === -1) continue;
    const end = lines.findIndex((candidate, j) => j > bodyStart && candidate.startsWith(`${indent}}`));
    if (end !== -1 && end - i + 1 > functionLinesMax)
      found.push(`${label}:${i + 1}: function of ${end - i + 1} lines`);
  }
  return found;
}

test("the function-size check measures signatures broken over several lines", () => {
  const body = (count: number): string[] => Array.from({ length: count }, (_, i) => `    step(${i});`);
  const multiLine = [
    "export async function long(",
    "  first: string,",
    "  second: number,",
    "): Promise<void> {",
  ];
  const method = ["class C {", "  async #long(", "    first: string,", "  ): Promise<void> {"];
  const callNotFunction = ["  assert(", "    condition,", "    message,", "  );", ...body(80)];
  const within = functionLinesMax - multiLine.length - 1;
  assert.deepEqual(longFunctions("x.ts", [...multiLine, ...body(within), "}"]), []);
  assert.deepEqual(longFunctions("x.ts", [...multiLine, ...body(within + 1), "}"]), [
    `x.ts:1: function of ${functionLinesMax + 1} lines`,
  ]);
  assert.deepEqual(longFunctions("x.ts", [...method, ...body(80), "  }", "}"]), [
    "x.ts:2: function of 84 lines",
  ]);
  assert.deepEqual(longFunctions("x.ts", ["function long(a: string): void {", ...body(80), "}"]), [
    "x.ts:1: function of 82 lines",
  ]);
  assert.deepEqual(longFunctions("x.ts", callNotFunction), []);
});

test("no test is focused with .only", () => {
  const violations: string[] = [];
  for (const file of [...sourceFiles("src"), ...sourceFiles("test")]) {
    if (!isTest(file)) continue;
    if (/\b(it|test|describe)\.only\(|\{\s*only:\s*true/.test(fs.readFileSync(file, "utf8")))
      violations.push(file);
  }
  assert.deepEqual(violations, []);
});

/** The test files `npm test` names: every quoted pattern of its script that ends in `.test.ts`. */
function filesNpmTestRuns(): string[] {
  const script = (
    JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
      scripts: { test: string };
    }
  ).scripts.test;
  const patterns = [...script.matchAll(/"([^"]*\.test\.ts)"/g)].map((match) => match[1]!);
  assert.ok(patterns.length >= 2, `npm test names its test files by quoted patterns: ${script}`);
  return patterns
    .flatMap((pattern) => fs.globSync(pattern, { cwd: root }))
    .map((file) => path.join(root, file));
}

test("npm test runs every test file exactly once (the timing-sensitive ones on their own)", () => {
  const every = [...sourceFiles("src"), ...sourceFiles("test")].filter((file) => file.endsWith(".test.ts"));
  const run = filesNpmTestRuns();
  const missing = every.filter((file) => !run.includes(file));
  const twice = run.filter((file, i) => run.indexOf(file) !== i);
  assert.deepEqual(
    missing.map((file) => path.relative(root, file)),
    [],
    "test files npm test never runs",
  );
  assert.deepEqual(
    twice.map((file) => path.relative(root, file)),
    [],
    "test files npm test runs twice",
  );
});
