import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import type { StatusResponse } from "../api/api-types.ts";
import { ContactsRecorder } from "./recovery.ts";

function statusOf(contacts: Record<string, number | undefined>, leader: string | null): StatusResponse {
  const members = [
    { id: "n1" },
    ...Object.entries(contacts).map(([id, lastContactMs]) => ({ id, lastContactMs })),
  ];
  return { id: "n1", members, leader: leader === null ? null : { id: leader } } as unknown as StatusResponse;
}

function tempDirectory(t: { after: (fn: () => void) => void }): string {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "baton-contacts-"));
  t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  return directory;
}

const contactsFile = (directory: string) => path.join(directory, "review", "contacts.json");

test("contacts are written off the event loop: record returns before the file exists, settled after", async (t) => {
  const directory = tempDirectory(t);
  const recorder = new ContactsRecorder(directory, (error) => assert.fail(error));
  recorder.record(statusOf({ n2: 250, n3: undefined }, "n2"), 10_000);
  assert.equal(fs.existsSync(contactsFile(directory)), false, "nothing was written synchronously");
  await recorder.settled();
  assert.deepEqual(JSON.parse(fs.readFileSync(contactsFile(directory), "utf8")), { n2: 9_750, n3: null });
  assert.equal(fs.existsSync(`${contactsFile(directory)}.tmp`), false, "the temporary file was renamed");
});

test("a member not heard from since keeps its last time, across a restart of the recorder", async (t) => {
  const directory = tempDirectory(t);
  const first = new ContactsRecorder(directory, (error) => assert.fail(error));
  first.record(statusOf({ n2: 100, n3: 200 }, "n2"), 5_000);
  await first.settled();
  const restarted = new ContactsRecorder(directory, (error) => assert.fail(error));
  restarted.record(statusOf({ n2: 50, n3: undefined }, null), 9_000);
  await restarted.settled();
  assert.deepEqual(JSON.parse(fs.readFileSync(contactsFile(directory), "utf8")), { n2: 8_950, n3: 4_800 });
});

test("one write at a time: of the records made meanwhile only the latest is written; a failed write is reported", async (t) => {
  const directory = tempDirectory(t);
  const errors: Error[] = [];
  const recorder = new ContactsRecorder(directory, (error) => errors.push(error));
  recorder.record(statusOf({ n2: 1 }, "n2"), 1_000);
  recorder.record(statusOf({ n2: 1 }, "n2"), 2_000);
  recorder.record(statusOf({ n2: 1 }, "n2"), 3_000);
  assert.equal(recorder.superseded, 1, "the second waited and was replaced by the third");
  await recorder.settled();
  assert.deepEqual(JSON.parse(fs.readFileSync(contactsFile(directory), "utf8")), { n2: 2_999 });

  // The review directory replaced by a file: the write fails, and is reported, not thrown.
  fs.rmSync(path.join(directory, "review"), { recursive: true });
  fs.writeFileSync(path.join(directory, "review"), "");
  recorder.record(statusOf({ n2: 1 }, "n2"), 4_000);
  await recorder.settled();
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.message, /EEXIST|ENOTDIR/);
});
