/**
 * One process of the replication floor (`floor-cluster.ts`): the least a durable, replicated write
 * must do in Node on this machine, and nothing more. It bounds from below what any Node design of
 * Baton's shape can reach, so that a latency target can be checked for feasibility before code is
 * changed for it.
 *
 * Per write the leader: parses the HTTP request and its JSON, appends a checksummed record to its
 * log file (`writeSync` on the event loop, as Baton's small appends), sends the record to every
 * follower on one TCP connection each, `fdatasync`s in the thread pool (one sync for every burst,
 * as Baton's group commit), counts the entry committed once a majority (itself included) has it on
 * disk, applies it to a `Map` and answers with JSON. A follower appends the records it receives,
 * syncs them the same way and answers with the index it has on disk. The commit index rides on the
 * next append; there is no separate commit message, no SQL, no terms, no elections, no snapshots,
 * no recovery. It is not a database: it is the floor under one. At one writer it is a latency floor;
 * under many writers it sends one message per write (Baton one per event-loop turn), so there it is
 * no ceiling on throughput.
 *
 * Usage: node bench/floor-node.ts leader DIR HTTP_PORT FOLLOWER_PORT,FOLLOWER_PORT
 *        node bench/floor-node.ts follower DIR PEER_PORT
 * Prints `ready` on stdout once it serves (a leader: once it is connected to every follower).
 */
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { crc32 } from "node:zlib";

/** Frame: u32 body length, u32 CRC-32 of the body, then the body: u64 index, u64 commit, data. */
const frameHeaderBytes = 8;
const appendFixedBytes = 16;
/** An acknowledgement: the u64 index the follower has on disk. */
const ackBytes = 8;
/** Requests larger than this are refused (the floor never sees one from the load generator). */
const requestBytesMax = 1024 * 1024;

type Log = { fd: number; position: number; written: number; durable: number; syncing: boolean };

function openLog(directory: string): Log {
  fs.mkdirSync(directory, { recursive: true });
  const fd = fs.openSync(path.join(directory, "log"), "w+");
  return { fd, position: 0, written: 0, durable: 0, syncing: false };
}

function encodeAppend(index: number, commit: number, data: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(frameHeaderBytes + appendFixedBytes + data.byteLength);
  frame.writeUInt32LE(appendFixedBytes + data.byteLength, 0);
  frame.writeBigUInt64LE(BigInt(index), frameHeaderBytes);
  frame.writeBigUInt64LE(BigInt(commit), frameHeaderBytes + 8);
  data.copy(frame, frameHeaderBytes + appendFixedBytes);
  frame.writeUInt32LE(crc32(frame.subarray(frameHeaderBytes)), 4);
  return frame;
}

/** Appends one frame to the log on the event loop; `sync` makes it durable. */
function append(log: Log, frame: Buffer, index: number): void {
  fs.writeSync(log.fd, frame, 0, frame.byteLength, log.position);
  log.position += frame.byteLength;
  log.written = index;
}

/** One `fdatasync` for everything written so far; another after it if more was written meanwhile. */
function sync(log: Log, onDurable: () => void): void {
  if (log.syncing || log.durable === log.written) return;
  log.syncing = true;
  const covered = log.written;
  fs.fdatasync(log.fd, (error) => {
    if (error !== null) throw error;
    log.syncing = false;
    log.durable = covered;
    onDurable();
    sync(log, onDurable);
  });
}

/** Splits a byte stream into frames of `frameBytes(head)` bytes each. */
function framer(frameBytes: (buffer: Buffer) => number | null, onFrame: (frame: Buffer) => void) {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk: Buffer): void => {
    pending = pending.byteLength === 0 ? chunk : Buffer.concat([pending, chunk]);
    for (;;) {
      const bytes = frameBytes(pending);
      if (bytes === null || pending.byteLength < bytes) return;
      onFrame(pending.subarray(0, bytes));
      pending = pending.subarray(bytes);
    }
  };
}

/**
 * What-if knobs, read once at start: CPU a design adds at one point of the write, as a busy wait of
 * that many µs, so that the latency it costs on this machine can be measured before it is built.
 * `FLOOR_PRE_US` on the leader before it sends, `FLOOR_POST_US` on the leader after the commit,
 * before its answer. `FLOOR_NEWS=1` makes the leader send the new commit index to both followers at
 * once (as Baton does) instead of on the next append, and `FLOOR_APPLY_US` is a follower's work on
 * that news (Baton's followers apply then).
 */
const knobs = {
  preUs: knobUs("FLOOR_PRE_US"),
  postUs: knobUs("FLOOR_POST_US"),
  applyUs: knobUs("FLOOR_APPLY_US"),
  news: knobUs("FLOOR_NEWS") === 1,
};

function knobUs(name: string): number {
  const value = Number(process.env[name] ?? 0);
  if (!Number.isInteger(value) || value < 0 || value > 1_000_000) {
    throw new Error(`${name} must be a whole number from 0 to 1000000, not ${process.env[name]}`);
  }
  return value;
}

function spin(us: number): void {
  if (us <= 0) return;
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
}
function runFollower(directory: string, port: number): void {
  const log = openLog(directory);
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const answer = (): void => {
      const ack = Buffer.allocUnsafe(ackBytes);
      ack.writeBigUInt64LE(BigInt(log.durable));
      socket.write(ack);
    };
    const frameBytes = (b: Buffer): number | null =>
      b.byteLength < 4 ? null : frameHeaderBytes + b.readUInt32LE(0);
    socket.on(
      "data",
      framer(frameBytes, (frame) => {
        if (crc32(frame.subarray(frameHeaderBytes)) !== frame.readUInt32LE(4))
          throw new Error("bad frame checksum");
        if (frame.byteLength === frameHeaderBytes + appendFixedBytes) {
          // Commit news alone (`FLOOR_NEWS`): nothing to append.
          spin(knobs.applyUs);
          return;
        }
        append(log, frame, Number(frame.readBigUInt64LE(frameHeaderBytes)));
        sync(log, answer);
      }),
    );
  });
  server.listen(port, "127.0.0.1", () => console.log("ready"));
}

type Waiting = { index: number; respond: () => void };

function runLeader(directory: string, httpPort: number, followerPorts: number[]): void {
  const log = openLog(directory);
  const state = new Map<string, unknown>();
  const followerDurable = followerPorts.map(() => 0);
  const waiting: Waiting[] = [];
  let lastIndex = 0;
  let commit = 0;
  const advance = (): void => {
    // A majority of three: the leader and one follower, or both followers.
    const sorted = [log.durable, ...followerDurable].sort((a, b) => b - a);
    const majority = sorted[Math.floor(sorted.length / 2)]!;
    if (majority <= commit) return;
    commit = majority;
    if (knobs.news) {
      const news = encodeAppend(commit, commit, Buffer.alloc(0));
      for (const socket of sockets) socket.write(news);
    }
    while (waiting.length > 0 && waiting[0]!.index <= commit) waiting.shift()!.respond();
  };
  const sockets = followerPorts.map((port, i) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.setNoDelay(true);
    socket.on(
      "data",
      framer(
        (b) => (b.byteLength < ackBytes ? null : ackBytes),
        (ack) => {
          followerDurable[i] = Math.max(followerDurable[i]!, Number(ack.readBigUInt64LE(0)));
          advance();
        },
      ),
    );
    return socket;
  });
  const write = (body: Buffer, respond: (index: number) => void): void => {
    const request = JSON.parse(body.toString("utf8")) as { rows?: unknown };
    if (!Array.isArray(request.rows)) throw new Error("a write has rows");
    spin(knobs.preUs);
    const index = ++lastIndex;
    const frame = encodeAppend(index, commit, body);
    for (const socket of sockets) socket.write(frame);
    append(log, frame, index);
    sync(log, advance);
    waiting.push({
      index,
      respond: () => {
        spin(knobs.postUs);
        for (const row of request.rows as [string, unknown][]) state.set(row[0], row[1]);
        respond(index);
      },
    });
  };
  const server = http.createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    incoming.on("data", (chunk: Buffer) => {
      bytes += chunk.byteLength;
      if (bytes > requestBytesMax) incoming.destroy();
      chunks.push(chunk);
    });
    incoming.on("end", () => {
      write(Buffer.concat(chunks), (index) => {
        const answer = JSON.stringify({ index, rows: state.size });
        outgoing.writeHead(200, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(answer),
        });
        outgoing.end(answer);
      });
    });
  });
  let connected = 0;
  for (const socket of sockets) {
    socket.once("connect", () => {
      if (++connected === sockets.length) server.listen(httpPort, "127.0.0.1", () => console.log("ready"));
    });
  }
}

const [role, directory, port, followers] = process.argv.slice(2);
if (role === "leader" && directory !== undefined && followers !== undefined) {
  runLeader(directory, Number(port), followers.split(",").map(Number));
} else if (role === "follower" && directory !== undefined) {
  runFollower(directory, Number(port));
} else {
  console.error("usage: floor-node.ts leader DIR HTTP_PORT FOLLOWER_PORTS | follower DIR PEER_PORT");
  process.exit(2);
}
process.on("SIGTERM", () => process.exit(0));
