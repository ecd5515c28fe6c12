/**
 * Reads SQLite session changesets into row changes, so that orphaned writes can be shown as rows,
 * compared with current data and replayed (`src/node/orphans.ts`). `node:sqlite` can apply a
 * changeset but not iterate one, so the format (sqlite.org/sessionintro.html, "Changeset Format")
 * is read here:
 *
 *   table header  'T', varint column count N, N bytes (primary-key position, 0 = not in the key),
 *                 the table name, NUL-terminated
 *   change        op (18 INSERT, 9 DELETE, 23 UPDATE), indirect flag, then records of N values:
 *                 INSERT the new row; DELETE the old row; UPDATE the old values (key columns and
 *                 changed columns; others "undefined") then the new values (changed columns only)
 *   value         0 undefined · 5 NULL · 1 INTEGER (8 bytes, big-endian two's complement) ·
 *                 2 REAL (8 bytes, big-endian IEEE 754) · 3 TEXT / 4 BLOB (varint length, bytes)
 *
 * Every length is checked against the bytes left; anything malformed is `PAYLOAD_CORRUPT`, never
 * a partial result.
 */
import { BatonError } from "../lib/errors.ts";
import type { SqlValue } from "./types.ts";

/** A column value in a change; `undefined` where the changeset does not carry it. */
export type ChangeValue = SqlValue | undefined;

export type RowChange = {
  readonly table: string;
  readonly op: "insert" | "update" | "delete";
  /** For each column, whether it is part of the primary key (its position, 1-based), or 0. */
  readonly primaryKey: readonly number[];
  /** Old values (update, delete); empty for insert. */
  readonly before: readonly ChangeValue[];
  /** New values (insert, update); empty for delete. */
  readonly after: readonly ChangeValue[];
};

/** Values per changeset, at most: a bound on what a damaged length can make this allocate. */
const columnsMax = 32_767;

function corrupt(message: string): BatonError {
  return new BatonError("PAYLOAD_CORRUPT", `changeset: ${message}`);
}

class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.#offset >= this.#bytes.length;
  }

  byte(): number {
    if (this.#offset >= this.#bytes.length) throw corrupt("ends inside a change");
    return this.#bytes[this.#offset++]!;
  }

  /** SQLite's varint: 1–9 bytes, 7 bits each, high bit set on all but the last (the 9th has 8). */
  varint(): number {
    let value = 0n;
    for (let i = 0; i < 9; i++) {
      const b = this.byte();
      if (i === 8) return this.safe((value << 8n) | BigInt(b));
      value = (value << 7n) | BigInt(b & 0x7f);
      if ((b & 0x80) === 0) return this.safe(value);
    }
    throw corrupt("bad varint");
  }

  safe(value: bigint): number {
    if (value > BigInt(this.#bytes.length)) throw corrupt(`length ${value} exceeds the changeset`);
    return Number(value);
  }

  take(length: number): Uint8Array {
    if (length > this.#bytes.length - this.#offset) throw corrupt("a value runs past the end");
    const slice = this.#bytes.slice(this.#offset, this.#offset + length);
    this.#offset += length;
    return slice;
  }

  int64(): bigint {
    if (this.#offset + 8 > this.#bytes.length) throw corrupt("an integer runs past the end");
    const value = this.#view.getBigInt64(this.#offset);
    this.#offset += 8;
    return value;
  }

  float64(): number {
    if (this.#offset + 8 > this.#bytes.length) throw corrupt("a real runs past the end");
    const value = this.#view.getFloat64(this.#offset);
    this.#offset += 8;
    return value;
  }

  cString(): string {
    const end = this.#bytes.indexOf(0, this.#offset);
    if (end === -1) throw corrupt("a table name is not terminated");
    const text = new TextDecoder("utf-8", { fatal: true }).decode(this.#bytes.subarray(this.#offset, end));
    this.#offset = end + 1;
    return text;
  }
}

function readValue(reader: Reader): ChangeValue {
  const type = reader.byte();
  switch (type) {
    case 0:
      return undefined;
    case 5:
      return null;
    case 1: {
      const value = reader.int64();
      return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(value)
        : value;
    }
    case 2:
      return reader.float64();
    case 3:
      return new TextDecoder("utf-8", { fatal: false }).decode(reader.take(reader.varint()));
    case 4:
      return reader.take(reader.varint());
    default:
      throw corrupt(`unknown value type ${type}`);
  }
}

function readRecord(reader: Reader, columns: number): ChangeValue[] {
  return Array.from({ length: columns }, () => readValue(reader));
}

const ops = { 18: "insert", 9: "delete", 23: "update" } as const;

/** The row changes of one changeset, in order. */
export function readChangeset(changeset: Uint8Array): RowChange[] {
  const reader = new Reader(changeset);
  const changes: RowChange[] = [];
  let table: { name: string; primaryKey: number[] } | null = null;
  while (!reader.done) {
    const marker = reader.byte();
    if (marker === 0x54) {
      const columns = reader.varint();
      if (columns === 0 || columns > columnsMax) throw corrupt(`a table with ${columns} columns`);
      const primaryKey = Array.from({ length: columns }, () => reader.byte());
      table = { name: reader.cString(), primaryKey };
      continue;
    }
    const op = ops[marker as keyof typeof ops];
    if (op === undefined) throw corrupt(`unknown change type ${marker}`);
    if (table === null) throw corrupt("a change before any table header");
    reader.byte(); // the indirect flag: changes made by triggers and foreign-key actions
    const columns = table.primaryKey.length;
    const before = op === "insert" ? [] : readRecord(reader, columns);
    const after = op === "delete" ? [] : readRecord(reader, columns);
    changes.push({ table: table.name, op, primaryKey: table.primaryKey, before, after });
  }
  return changes;
}
