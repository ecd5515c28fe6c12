import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { nodeId } from "../types/ids.ts";
import type { Connection } from "./connection.ts";
import { frameHeaderBytes, partLengthBytes } from "./frame.ts";
import { hasQueued, stepsPerCallMax, type WriteBounds, writeQueued } from "./link-writer.ts";
import { createPeerLink, type PeerLink } from "./peer-link.ts";

const bounds: WriteBounds = { batchBytesMax: 160, pieceBytesMax: 64 };
const queueBounds = { messagesMax: 10_000, bytesMax: 10_000_000 };

type Position = { first: boolean; last: boolean; messageBytes: number };
type Written = { kind: "messages"; bodies: Uint8Array[] } | ({ kind: "part"; piece: Uint8Array } & Position);

/** Stands in for a connection: takes `budget` writes, then asks for drain; records what it got. */
class FakeConnection {
  readonly written: Written[] = [];
  budget = 0;
  get writable(): boolean {
    return this.budget > 0;
  }
  writeMessages(bodies: readonly Uint8Array[]): boolean {
    this.written.push({ kind: "messages", bodies: [...bodies] });
    this.budget -= 1;
    return this.writable;
  }
  writePart(piece: readonly Uint8Array[], position: Position): boolean {
    this.written.push({ kind: "part", piece: new Uint8Array(Buffer.concat(piece)), ...position });
    this.budget -= 1;
    return this.writable;
  }
  asConnection(): Connection {
    return this as unknown as Connection;
  }
}

/** What a receiver of `connection`'s frames delivers, joining pieces as `MessageAssembler` does. */
function delivered(connection: FakeConnection): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pieces: Uint8Array[] = [];
  for (const w of connection.written) {
    if (w.kind === "messages") out.push(...w.bodies);
    else {
      assert.equal(w.first, pieces.length === 0, "the first piece of each message is marked");
      pieces.push(w.piece);
      if (w.last) {
        assert.equal(
          w.messageBytes,
          pieces.reduce((sum, p) => sum + p.length, 0),
          "the length named",
        );
        out.push(new Uint8Array(Buffer.concat(pieces)));
        pieces = [];
      }
    }
  }
  return out;
}

/** A body of `bytes` bytes (at least 4) that names message `id` and can be checked whole. */
function body(id: number, bytes: number): Uint8Array {
  const b = new Uint8Array(Math.max(4, bytes));
  new DataView(b.buffer).setUint32(0, id);
  for (let i = 4; i < b.length; i++) b[i] = (id * 31 + i) & 0xff;
  return b;
}

const idOf = (b: Uint8Array): number => new DataView(b.buffer, b.byteOffset).getUint32(0);

/** Calls `writeQueued` until it is done, checking that no call takes more than its steps. */
function writeAll(link: PeerLink, connection: Connection, writeBounds: WriteBounds): void {
  const fake = connection as unknown as FakeConnection;
  for (let calls = 0; ; calls++) {
    assert.ok(calls < 10_000, "writing ends");
    const before = fake.written.length;
    const more = writeQueued(link, connection, writeBounds);
    assert.ok(fake.written.length - before <= stepsPerCallMax, "a call takes at most its steps");
    if (!more) return;
  }
}

function newLink(): PeerLink {
  return createPeerLink(nodeId("p"), null, queueBounds, queueBounds);
}

test("an urgent message passes an ordered message being written in pieces; ordered ones keep their order", () => {
  const link = newLink();
  const connection = new FakeConnection();
  const big = body(1, 300);
  link.queue.push(body(0, 10), 0);
  link.queue.push(big, 0);
  link.queue.push(body(2, 10), 0);
  connection.budget = 2; // the small one, then the first piece of the big one
  writeQueued(link, connection.asConnection(), bounds);
  assert.equal(connection.written.length, 2);
  link.urgent.push(body(100, 8), 0);
  connection.budget = 1;
  writeQueued(link, connection.asConnection(), bounds);
  assert.deepEqual(connection.written.at(-1), { kind: "messages", bodies: [body(100, 8)] });
  connection.budget = 100;
  writeAll(link, connection.asConnection(), bounds);
  assert.equal(hasQueued(link), false);
  assert.deepEqual(delivered(connection).map(idOf), [0, 100, 1, 2]);
  assert.deepEqual(delivered(connection)[2], big);
  const pieces = connection.written.filter((w) => w.kind === "part");
  // Each piece fills its frame; the first one also carries the message's length.
  const room = bounds.pieceBytesMax - frameHeaderBytes;
  assert.equal(pieces.length, 1 + Math.ceil((300 - (room - partLengthBytes)) / room));
  assert.ok(
    pieces.every((w) => w.kind === "part" && w.piece.length + (w.first ? partLengthBytes : 0) <= room),
  );
  assert.equal(link.counters.sentMessages, 4);
});

test("a message cut short by a connection change is dropped and counted, never finished on the new one", () => {
  const link = newLink();
  const first = new FakeConnection();
  link.queue.push(body(1, 300), 0);
  link.queue.push(body(2, 10), 0);
  first.budget = 2;
  writeQueued(link, first.asConnection(), bounds);
  assert.equal(first.written.length, 2);
  const second = new FakeConnection();
  second.budget = 100;
  writeAll(link, second.asConnection(), bounds);
  assert.ok(
    second.written.every((w) => w.kind === "messages"),
    "no piece of the cut message",
  );
  assert.deepEqual(delivered(second).map(idOf), [2]);
  assert.equal(link.counters.droppedMessages, 1);
  assert.equal(link.counters.droppedBytes, 300);
});

type Op =
  | { kind: "ordered"; bytes: number; cut: number }
  | { kind: "urgent"; bytes: number }
  | { kind: "write"; budget: number }
  | { kind: "reconnect" };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("ordered" as const),
    bytes: fc.integer({ min: 4, max: 400 }),
    // 0: one body; else the body is sent as two parts cut there (a referenced large value).
    cut: fc.nat({ max: 400 }),
  }),
  fc.record({ kind: fc.constant("urgent" as const), bytes: fc.integer({ min: 4, max: 40 }) }),
  fc.record({ kind: fc.constant("write" as const), budget: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ kind: fc.constant("reconnect" as const) }),
);

test("property: whatever the writes and reconnects, every delivered message is whole, lanes keep order, urgent goes first", () => {
  fc.assert(
    fc.property(fc.array(opArbitrary, { maxLength: 80 }), (ops) => {
      const link = newLink();
      const connections = [new FakeConnection()];
      const sent = new Map<number, Uint8Array>();
      const urgentIds = new Set<number>();
      let nextId = 1;
      for (const op of ops) {
        const connection = connections.at(-1)!;
        if (op.kind === "reconnect") connections.push(new FakeConnection());
        else if (op.kind === "write") {
          const before = connection.written.length;
          const urgentWaiting = link.urgent.length > 0;
          connection.budget = op.budget;
          writeQueued(link, connection.asConnection(), bounds);
          // Urgent messages queued before a write leave in its first step.
          if (urgentWaiting) assert.equal(connection.written[before]?.kind, "messages");
        } else {
          const b = body(nextId, op.bytes);
          sent.set(nextId, b);
          if (op.kind === "urgent") link.urgent.push(b, 0);
          else
            link.queue.push(
              op.cut === 0 ? b : [b.subarray(0, op.cut % b.length), b.subarray(op.cut % b.length)],
              0,
            );
          if (op.kind === "urgent") urgentIds.add(nextId);
          nextId += 1;
        }
      }
      const connection = connections.at(-1)!;
      connection.budget = 10_000;
      writeAll(link, connection.asConnection(), bounds);
      assert.equal(hasQueued(link), false);
      const all = connections.flatMap(delivered);
      for (const b of all) assert.deepEqual(b, sent.get(idOf(b)), "a delivered message is one sent, whole");
      const ids = all.map(idOf);
      assert.equal(new Set(ids).size, ids.length, "nothing delivered twice");
      const ordered = ids.filter((id) => !urgentIds.has(id));
      const urgent = ids.filter((id) => urgentIds.has(id));
      assert.deepEqual(
        ordered,
        [...ordered].sort((x, y) => x - y),
      );
      assert.deepEqual(
        urgent,
        [...urgent].sort((x, y) => x - y),
      );
      assert.equal(urgent.length, urgentIds.size, "urgent messages are never cut");
      assert.equal(link.counters.sentMessages + link.counters.droppedMessages, sent.size);
    }),
  );
});
