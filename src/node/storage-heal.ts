/**
 * Healing from peers: what a node does after it found its log or its database damaged, until it
 * holds intact data again (docs/architecture.md, "Storage faults").
 *
 * - Lost log entries (the log's recovery healed corruption and recorded `HardState.promised`): the
 *   consensus core keeps the node from campaigning, and from voting for a log behind what it may have
 *   promised, until its durable log has it back (`src/consensus/lost-entries.ts`); the leader sends
 *   what it lacks as entries or a snapshot, as to any follower behind. Here: the bound on that wait.
 * - A damaged database (a consistency check found this node's content hash in the minority,
 *   `consistency-check.ts`; or, on a database not verified since it opened, a committed entry did
 *   not apply): the node records that durably (`<database>.damaged`, so that a restart
 *   does not serve it again), serves no reads or writes from it (STORE_DAMAGED), takes and sends no
 *   snapshot of it, holds back its candidacy (handing leadership to a voter whose hash was the
 *   majority's if it leads), and asks the leader for a snapshot at or after its applied index every
 *   `snapshotAckTimeoutMs`; a leader sends one only after a check found its own data in the majority
 *   at or past the asker's applied index (so a leader in the minority never does). The
 *   snapshot, verified whole before it is swapped in (`snapshot-transfer.ts`), replaces the
 *   database; the marker is removed and the node serves again. A damaged database applies nothing
 *   meanwhile.
 * - Either way, a node not healed within `healWaitMsMax` says so (NO_INTACT_COPY) and stops: too few
 *   intact copies could be had. Restarted later, it carries on where it stopped (the bound and the
 *   marker are durable).
 * - A database not verified yet: a node that opened a database holding data has not compared it
 *   with the other replicas since, and damage done while it was down would go unseen. It serves no
 *   reads from it (STORE_UNVERIFIED) and, leading, runs no writes on it (they wait at the gate), and
 *   asks the leader for a consistency check every `snapshotAckTimeoutMs` until one finds its hash in
 *   the majority, or a leader's snapshot replaces the database. An empty database is verified.
 */
import fs from "node:fs";
import { mayLead } from "../consensus/index.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { logIndex, type NodeId, nodeId } from "../types/ids.ts";
import { readDurableFile, writeDurableFile } from "../wal/durable-file.ts";
import { defaultSyncFile } from "../wal/file-sync.ts";
import type { DamageFound } from "./consistency-check.ts";
import type { NodeConfig } from "./node-config.ts";
import { encodeStorage } from "./peer-envelope.ts";
import type { ReplicaLoop } from "./replica-loop.ts";
import type { Cancel, NodeRuntime } from "./runtime.ts";

/** A damaged database as recorded in its marker file. */
export type DamageRecord = {
  /** The check's index, or the committed entry that did not apply. */
  readonly index: number;
  /** How it was found: a check's minority, or a committed entry that did not apply. */
  readonly reason: "check" | "diverged";
  readonly ownHash: string;
  readonly majorityHash: string;
  /** The voters whose hash was the majority's (none when found by an entry that did not apply). */
  readonly agreeing: readonly string[];
  readonly detectedAtMs: number;
};

type Parts = {
  readonly config: NodeConfig;
  readonly runtime: NodeRuntime;
  readonly loop: ReplicaLoop;
  readonly send: (peer: NodeId, body: Uint8Array) => void;
  /** Ends snapshot transfers this node is sending (they would send the damaged database). */
  readonly abortSending: () => void;
  /** This node leads and its own database is not verified: start a check. */
  readonly requestCheck: () => void;
  /** A witness holds no data: there is nothing of it to verify. */
  readonly isWitness: () => boolean;
};

export function damageMarkerPath(databasePath: string): string {
  return `${databasePath}.damaged`;
}

/**
 * The damage recorded in `file`, or null when there is none. A marker that is itself damaged (or
 * not a damage record) still says the database was found damaged: it is taken as such, never
 * ignored, and replaced when the database is.
 */
function readMarker(file: string, nowMs: number): DamageRecord | null {
  let parsed: Partial<DamageRecord> | null = null;
  try {
    const content = readDurableFile(file);
    if (content === null) return null;
    parsed = JSON.parse(Buffer.from(content).toString("utf8")) as Partial<DamageRecord>;
  } catch {}
  if (parsed !== null && Number.isSafeInteger(parsed.index) && typeof parsed.majorityHash === "string")
    return parsed as DamageRecord;
  const unknown = { index: 0, ownHash: "", majorityHash: "", agreeing: [] };
  return { ...unknown, reason: "check", detectedAtMs: nowMs };
}

export class StorageHeal {
  private readonly parts: Parts;
  private readonly markerPath: string;
  private damage: DamageRecord | null;
  /** A check found this database in the majority (or it was empty, or a leader's snapshot replaced it). */
  private verifiedValue: boolean;
  /** When this process started waiting for lost entries or a snapshot. */
  private waitingSinceMs: number | null = null;
  private cancelTicker: Cancel | null = null;
  private stopped = false;

  constructor(parts: Parts) {
    this.parts = parts;
    this.markerPath = damageMarkerPath(parts.runtime.store.path);
    this.damage = readMarker(this.markerPath, parts.runtime.clock.nowMs());
    const trusting = parts.config.unsafeNodeBugs?.skipConsistencyChecks === true;
    this.verifiedValue = this.damage === null && (parts.runtime.store.appliedIndex === 0 || trusting);
  }

  get verified(): boolean {
    return this.verifiedValue || this.parts.isWitness();
  }

  /** A consistency check found this node's hash in the majority. */
  checkPassed(): void {
    if (this.damage !== null || this.verifiedValue) return;
    this.verifiedValue = true;
    this.parts.runtime.logger("info", "store.verified", {
      appliedIndex: this.parts.runtime.store.appliedIndex,
    });
  }

  /**
   * A check ended with no hash held by a majority of the data voters. A leader whose own database
   * is not verified cannot tell whether it is the damaged copy, and while it leads nothing can be
   * written: it hands office to the best other voter, one whose database may be verified.
   */
  checkInconclusive(): void {
    const { loop, runtime } = this.parts;
    const core = loop.core.summary();
    if (this.verified || this.stopped || core.role !== "leader" || core.transferTarget !== null) return;
    runtime.logger("warn", "store.unverified-leader-hands-over", { term: core.term });
    loop.stepSafely({ type: "transferLeadership" });
  }

  /** The error a read served from this database gets now, or null when it may be served. */
  readRefusal(): BatonError | null {
    const damaged = this.damageError();
    if (damaged !== null || this.verified) return damaged;
    return new BatonError(
      ErrorCode.STORE_UNVERIFIED,
      "this node's database has not been compared with the other replicas since it started; ask another node",
    );
  }

  /** The database failed a check and was not replaced yet. */
  get damaged(): DamageRecord | null {
    return this.damage;
  }

  /** At start: carry on healing what the last run left unhealed. */
  start(): void {
    const { loop, runtime } = this.parts;
    if (this.damage !== null) {
      runtime.logger("warn", "store.damaged-at-start", { ...this.damage });
      loop.stepSafely({ type: "holdCandidacy", hold: true });
    }
    const promised = loop.core.summary().promised;
    if (promised !== null) runtime.logger("warn", "wal.lost-entries-outstanding", { ...promised });
    this.afterStep();
  }

  /** Refuses a read served from the database while it is damaged or not verified. */
  refuseRead(): void {
    const error = this.readRefusal();
    if (error !== null) throw error;
  }

  /** The error a request served from the damaged database gets, or null when it is not damaged. */
  damageError(): BatonError | null {
    const damage = this.damage;
    if (damage === null) return null;
    return new BatonError(
      ErrorCode.STORE_DAMAGED,
      `this node's database differs from a majority of the voters at index ${damage.index}; it is being replaced from the leader`,
      { index: damage.index },
    );
  }

  /** For `/v1/status`. */
  status(): {
    lostEntriesUntil: { index: number; term: number } | null;
    damaged: DamageRecord | null;
    verified: boolean;
  } {
    const promised = this.parts.loop.core.summary().promised;
    return {
      lostEntriesUntil: promised === null ? null : { index: promised.index, term: promised.term },
      damaged: this.damage,
      verified: this.verified,
    };
  }

  /** A consistency check found this node's hash in the minority. */
  onDamage(found: DamageFound): void {
    const detectedAtMs = this.parts.runtime.clock.nowMs();
    this.recordDamage({ ...found, reason: "check", agreeing: [...found.agreeing], detectedAtMs });
  }

  /**
   * A committed entry did not apply here (STORE_DIVERGED): this node's data differs from the
   * leader's. On a database not verified since it opened, that is taken as damage to it (true);
   * on a verified one it is left to the fatal path (false): a bug, or a leader's own damage, which
   * this node must not adopt.
   */
  onDiverged(error: BatonError): boolean {
    if (this.damage !== null) return true;
    if (this.verifiedValue || this.stopped) return false;
    const { runtime } = this.parts;
    const appliedIndex = runtime.store.appliedIndex;
    runtime.logger("error", "store.diverged-unverified", { error: error.message, appliedIndex });
    const detectedAtMs = runtime.clock.nowMs();
    const found = { index: appliedIndex + 1, ownHash: "", majorityHash: "", agreeing: [] };
    this.recordDamage({ ...found, reason: "diverged", detectedAtMs });
    return true;
  }

  private recordDamage(record: DamageRecord): void {
    const { runtime, loop } = this.parts;
    if (this.damage !== null || this.stopped) return;
    this.damage = record;
    this.verifiedValue = false;
    this.parts.abortSending();
    loop.stepSafely({ type: "holdCandidacy", hold: true });
    const content = Buffer.from(JSON.stringify(record));
    runtime
      .io(() => writeDurableFile(this.markerPath, content, defaultSyncFile))
      .catch((error: unknown) => loop.fail(error instanceof Error ? error : new Error(String(error))));
    this.afterStep();
  }

  /** A leader's snapshot replaced the database: a damaged one is healed. */
  snapshotInstalled(): void {
    const { runtime, loop } = this.parts;
    const healed = this.damage;
    this.verifiedValue = true;
    if (healed === null) return;
    this.damage = null;
    loop.stepSafely({ type: "holdCandidacy", hold: false });
    runtime.logger("warn", "store.healed", {
      damagedAt: healed.index,
      appliedIndex: runtime.store.appliedIndex,
    });
    // Entries committed past the snapshot were not applied while the database was damaged.
    loop.reportApplied(runtime.store.appliedIndex);
    runtime
      .io(() => fs.promises.rm(this.markerPath, { force: true }))
      .catch((error: unknown) => loop.fail(error instanceof Error ? error : new Error(String(error))));
  }

  /** After every step: keep the heal ticker running exactly while something is being healed. */
  afterStep(): void {
    const healing = this.damage !== null || this.parts.loop.core.summary().promised !== null;
    if (!healing) this.waitingSinceMs = null;
    else this.waitingSinceMs ??= this.parts.runtime.clock.nowMs();
    if ((!healing && this.verified) || this.stopped) {
      this.waitingSinceMs = null;
      this.cancelTicker?.();
      this.cancelTicker = null;
      return;
    }
    if (this.cancelTicker !== null) return;
    const { runtime, config } = this.parts;
    this.cancelTicker = runtime.timers.every(config.snapshotAckTimeoutMs, () => this.tick());
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    this.cancelTicker?.();
    this.cancelTicker = null;
  }

  private tick(): void {
    const { loop, runtime, config } = this.parts;
    if (this.stopped || loop.fatal !== null) return;
    const waitedMs = this.waitingSinceMs === null ? 0 : runtime.clock.nowMs() - this.waitingSinceMs;
    if (waitedMs > config.healWaitMsMax) {
      loop.fail(this.noIntactCopy(waitedMs));
      return;
    }
    if (this.damage !== null) this.askForSnapshot(this.damage);
    else if (!this.verified) this.askForCheck();
  }

  private askForCheck(): void {
    const { loop, runtime, send } = this.parts;
    const core = loop.core.summary();
    if (core.role === "leader") this.parts.requestCheck();
    else if (core.leaderId !== null)
      send(
        core.leaderId,
        encodeStorage({ kind: "checkRequest", appliedIndex: logIndex(runtime.store.appliedIndex) }),
      );
  }

  private askForSnapshot(damage: DamageRecord): void {
    const { loop, runtime, send } = this.parts;
    const core = loop.core.status();
    if (core.role === "leader") {
      // Hand over to the most up-to-date voter whose hash was the majority's (any, if none is known)
      // and that may lead: the core refuses a transfer to a witness or a never-promote voter, and a
      // damaged leader that kept choosing one stayed in office (found by the simulator).
      const trusted = (id: string): boolean => damage.agreeing.length === 0 || damage.agreeing.includes(id);
      const target = core.members
        .filter(
          (member) =>
            member.role === "voter" && trusted(member.id) && mayLead(core.clusterConfig, nodeId(member.id)),
        )
        .sort((a, b) => b.matchIndex - a.matchIndex)[0];
      if (target !== undefined && core.transferTarget === null)
        loop.stepSafely({ type: "transferLeadership", target: target.id });
      return;
    }
    // Any leader: it sends a snapshot only once a check found its own data in the majority at or
    // past this node's applied index (`baton-node.ts`), so a leader in the minority never does.
    const leader = core.leaderId;
    if (leader === null) return;
    const appliedIndex = logIndex(runtime.store.appliedIndex);
    send(leader, encodeStorage({ kind: "snapshotRequest", appliedIndex }));
    runtime.logger("info", "store.snapshot-requested", { leader, appliedIndex });
  }

  private noIntactCopy(waitedMs: number): BatonError {
    const promised = this.parts.loop.core.summary().promised;
    const what =
      this.damage !== null
        ? `its database failed a consistency check at index ${this.damage.index} and no leader whose data a majority shares sent a snapshot`
        : `its log lost entries up to ${promised?.index} (term ${promised?.term}) and no leader sent them back`;
    return new BatonError(
      ErrorCode.NO_INTACT_COPY,
      `this node waited ${waitedMs} ms for an intact copy from its peers: ${what}. Too few intact copies answered; it stops`,
      { waitedMs, damaged: this.damage, promised },
    );
  }
}
