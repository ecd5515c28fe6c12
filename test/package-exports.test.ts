/**
 * Every entry point `package.json` exports exists and imports, both by path and by the package's own
 * name (which is how Node resolves `exports`), and the root exposes the client.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

const root = path.resolve(import.meta.dirname, "..");
const manifest = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
  name: string;
  exports: Record<string, string>;
};

test("package.json exports the root and the client", () => {
  assert.deepEqual(Object.keys(manifest.exports).sort(), [".", "./client"]);
});

for (const [subpath, target] of Object.entries(manifest.exports)) {
  test(`export ${subpath} (${target}) exists and imports`, async () => {
    assert.equal(typeof target, "string", "each export is one path");
    const file = path.join(root, target);
    assert.ok(fs.existsSync(file), `${target} does not exist`);
    const byPath = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    assert.ok(Object.keys(byPath).length > 0, `${target} exports nothing`);
    const specifier = subpath === "." ? manifest.name : `${manifest.name}/${subpath.slice(2)}`;
    const byName = (await import(specifier)) as Record<string, unknown>;
    assert.equal(byName, byPath, `${specifier} resolves to ${target}`);
  });
}

test("the package root is the client library plus the request limits", async () => {
  const packageRoot = (await import(manifest.name)) as Record<string, unknown>;
  const client = (await import(`${manifest.name}/client`)) as Record<string, unknown>;
  assert.equal(typeof packageRoot.connect, "function");
  for (const name of Object.keys(client)) assert.equal(packageRoot[name], client[name], name);
  assert.equal((packageRoot.requestLimits as { statementsPerBatchMax: number }).statementsPerBatchMax, 1000);
});
