import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type Message, readIndexRefusals } from "../consensus/messages.ts";
import { joinParts } from "../lib/byte-parts.ts";
import { isBatonError } from "../lib/errors.ts";
import { logIndex, nodeId, term } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import { decodeMessage, encodeMessage, encodeMessageParts, referencedDataBytesMin } from "./message-codec.ts";

const ids = fc.constantFrom(nodeId("n1"), nodeId("node-2"), nodeId("a.b_c"));
const safe = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const small = fc.integer({ min: 0, max: 1_000_000 });
const envelope = fc.record({ from: ids, to: ids, term: safe.map(term) });
/** Distinct ids split into at least one voter and the rest learners. */
const clusterConfigArbitrary = fc
  .uniqueArray(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,8}$/).map(nodeId), {
    minLength: 1,
    maxLength: 12,
  })
  .chain((members) =>
    fc.integer({ min: 1, max: members.length }).map((voterCount) => ({
      voters: members.slice(0, voterCount),
      learners: members.slice(voterCount),
    })),
  );

const messageArbitrary: fc.Arbitrary<Message> = fc
  .oneof(
    fc.record(
      {
        type: fc.constant("preVote" as const),
        lastLogIndex: safe.map(logIndex),
        lastLogTerm: safe.map(term),
        held: fc.constant(true as const),
      },
      { requiredKeys: ["type", "lastLogIndex", "lastLogTerm"] },
    ),
    fc.record({
      type: fc.constant("requestVote" as const),
      lastLogIndex: safe.map(logIndex),
      lastLogTerm: safe.map(term),
      transfer: fc.boolean(),
    }),
    fc.record({
      type: fc.constantFrom("preVoteResponse" as const, "requestVoteResponse" as const),
      granted: fc.boolean(),
    }),
    fc
      .record({
        prevLogIndex: small,
        prevLogTerm: safe.map(term),
        leaderCommit: safe.map(logIndex),
        entries: fc.array(
          fc.record({
            term: safe.map(term),
            kind: fc.constantFrom(EntryKind.command, EntryKind.noop, EntryKind.config),
            data: fc.uint8Array({ maxLength: 64 }),
          }),
          { maxLength: 6 },
        ),
        quiet: fc.boolean(),
        reportApplied: fc.boolean(),
      })
      .map((m) => ({
        type: "appendEntries" as const,
        prevLogIndex: logIndex(m.prevLogIndex),
        prevLogTerm: m.prevLogTerm,
        leaderCommit: m.leaderCommit,
        entries: m.entries.map((e, i) => ({ ...e, index: logIndex(m.prevLogIndex + 1 + i) })),
        ...(m.quiet ? { quiet: true as const } : {}),
        ...(m.reportApplied ? { reportApplied: true as const } : {}),
      })),
    fc.record({
      type: fc.constant("appendEntriesResponse" as const),
      success: fc.boolean(),
      matchIndex: safe.map(logIndex),
      rejectedIndex: safe.map(logIndex),
      conflictTerm: safe.map(term),
      conflictIndex: safe.map(logIndex),
      appliedIndex: safe.map(logIndex),
    }),
    fc.record(
      {
        type: fc.constant("heartbeat" as const),
        leaderCommit: safe.map(logIndex),
        readRound: safe,
        dataFloor: safe.filter((n) => n > 0).map(logIndex),
      },
      { requiredKeys: ["type", "leaderCommit", "readRound"] },
    ),
    fc.record(
      {
        type: fc.constant("heartbeatResponse" as const),
        readRound: safe,
        appliedIndex: safe.map(logIndex),
        report: fc.constant(true as const),
      },
      { requiredKeys: ["type", "readRound", "appliedIndex"] },
    ),
    fc.record({ type: fc.constant("timeoutNow" as const) }),
    fc.record({ type: fc.constant("readIndex" as const), readId: safe }),
    fc.record({
      type: fc.constant("readIndexResponse" as const),
      readId: safe,
      index: safe.map(logIndex),
      refusal: fc.constantFrom(null, ...readIndexRefusals),
    }),
    fc.record({
      type: fc.constant("installSnapshot" as const),
      snapshotIndex: safe.map(logIndex),
      snapshotTerm: safe.map(term),
      snapshotConfig: clusterConfigArbitrary,
    }),
  )
  .chain((body) => envelope.map((e) => ({ ...e, ...body }) as Message));

test("every consensus message survives encode and decode unchanged", () => {
  fc.assert(
    fc.property(messageArbitrary, (message) => {
      assert.deepEqual(decodeMessage(encodeMessage(message)), message);
    }),
    { numRuns: 2000 },
  );
});

test("a message encoded in parts is the same bytes; large entry data is referenced, not copied", () => {
  fc.assert(
    fc.property(messageArbitrary, fc.nat({ max: 9 }), (message, prefixBytes) => {
      const parts = encodeMessageParts(message, prefixBytes);
      const whole = encodeMessage(message, prefixBytes);
      assert.deepEqual(
        Buffer.from(joinParts(parts)).subarray(prefixBytes),
        Buffer.from(whole).subarray(prefixBytes),
      );
    }),
    { numRuns: 500 },
  );
  const large = new Uint8Array(referencedDataBytesMin).fill(9);
  const entries = [1, 2, 3].map((i) => ({
    index: logIndex(10 + i),
    term: term(2),
    kind: EntryKind.command,
    data: i === 2 ? large : Uint8Array.of(i),
  }));
  const message: Message = {
    type: "appendEntries",
    from: nodeId("n1"),
    to: nodeId("n2"),
    term: term(2),
    prevLogIndex: logIndex(10),
    prevLogTerm: term(2),
    leaderCommit: logIndex(10),
    entries,
  };
  const parts = encodeMessageParts(message, 1);
  assert.equal(parts.length, 3, "before, the entry's data, after");
  assert.equal(parts[1], large, "the data itself");
  assert.ok(parts[0]!.byteLength + parts[2]!.byteLength < 200, "the rest is small");
  assert.deepEqual(decodeMessage(joinParts(parts).subarray(1)), decodeMessage(encodeMessage(message)));
});

test("truncated, extended or flipped messages are rejected with BAD_MESSAGE or decode to a valid message", () => {
  fc.assert(
    fc.property(
      messageArbitrary,
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      fc.nat({ max: 2 }),
      (message, at, mask, mode) => {
        const bytes = Buffer.from(encodeMessage(message));
        let damaged: Uint8Array;
        if (mode === 0) damaged = bytes.subarray(0, at % bytes.byteLength);
        else if (mode === 1) damaged = Buffer.concat([bytes, Buffer.from([mask])]);
        else {
          damaged = Buffer.from(bytes);
          damaged[at % bytes.byteLength] = (damaged[at % bytes.byteLength] ?? 0) ^ mask;
        }
        try {
          const decoded = decodeMessage(damaged);
          // A flip inside a free-form field (a payload byte, a term) can still decode; it must then re-encode to the same bytes.
          assert.deepEqual(Buffer.from(encodeMessage(decoded)), Buffer.from(damaged));
        } catch (error) {
          assert.ok(isBatonError(error, "BAD_MESSAGE"), `unexpected ${String(error)}`);
        }
      },
    ),
    { numRuns: 3000 },
  );
});

test("an append's trailing flags byte carries quiet and reportApplied; zero or unknown bits are refused", () => {
  const append = {
    type: "appendEntries" as const,
    from: nodeId("n1"),
    to: nodeId("n2"),
    term: term(3),
    prevLogIndex: logIndex(7),
    prevLogTerm: term(3),
    leaderCommit: logIndex(7),
    entries: [],
  };
  const plain = Buffer.from(encodeMessage(append));
  assert.deepEqual(decodeMessage(plain), append, "no flag set: no flags byte");
  const both = Buffer.from(encodeMessage({ ...append, quiet: true, reportApplied: true }));
  assert.deepEqual(both.subarray(0, plain.byteLength), plain);
  assert.deepEqual([...both.subarray(plain.byteLength)], [3]);
  assert.deepEqual(decodeMessage(Buffer.concat([plain, Buffer.from([2])])), {
    ...append,
    reportApplied: true,
  });
  for (const flags of [0, 4, 0x83]) {
    assert.throws(
      () => decodeMessage(Buffer.concat([plain, Buffer.from([flags])])),
      (error: unknown) => isBatonError(error, "BAD_MESSAGE"),
      `flags ${flags}`,
    );
  }
});
