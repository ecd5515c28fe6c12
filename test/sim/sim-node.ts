/**
 * One simulated machine: the production `BatonNode` on a simulated runtime, with a real SQLite
 * `Store` in a temporary directory, a `SimLogStore` over a `SimDisk`, simulated timers and the
 * simulated network.
 *
 * A crash kills the incarnation as a process death would: its timers never fire, its pending log
 * writes are lost, its transport falls silent, and the store is closed without committing (an open
 * speculative transaction rolls back; committed SQLite transactions stay, as they do on disk). A
 * restart recovers exactly as `baton start` does: the log from the disk, the store from its file.
 * A wipe (of a dead machine) loses everything: the log's disk, the store file, the snapshots; the
 * next boot starts from the configuration the operator gives it, as a node started with `--join`
 * starts from the one its join answer named.
 */
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { ClusterConfig } from "../../src/consensus/cluster-config.ts";
import type { RaftCore } from "../../src/consensus/index.ts";
import { assert } from "../../src/lib/assert.ts";
import type { Prng } from "../../src/lib/prng.ts";
import { BatonNode } from "../../src/node/baton-node.ts";
import { type NodeConfig, nodeDefaults } from "../../src/node/node-config.ts";
import { quarantineSink } from "../../src/node/orphans.ts";
import type { LoopObserver } from "../../src/node/runtime.ts";
import { reconcileStorage } from "../../src/node/snapshot-files.ts";
import { openStoreBehindLog } from "../../src/node/storage-repair.ts";
import { OrphanQuarantine } from "../../src/store/orphan-quarantine.ts";
import type { Store } from "../../src/store/store.ts";
import type { NodeId } from "../../src/types/ids.ts";
import type { LogEntry } from "../../src/types/log-entry.ts";
import type { SimNetwork } from "./network.ts";
import { type SimOptions, simTickMs } from "./options.ts";
import { SimIo } from "./sim-io.ts";
import { SimDisk, SimLogStore } from "./sim-log-store.ts";
import { SimTimers, SimTransport } from "./sim-runtime.ts";

/** The cluster id every simulated node is started with, and a joining node adopts. */
const simClusterId = "sim";

/** Where a simulated node listens (the simulated network routes by id; the configuration carries these). */
export function simAddress(id: string): { raft: string; http: string } {
  return { raft: `${id}.sim:7000`, http: `${id}.sim:8000` };
}

/**
 * A node's configuration with `bootstrap` as its starting cluster configuration, its peers those
 * of it with an address, as `src/node/launch.ts` builds it from `--cluster` or a join answer.
 */
export function simNodeConfig(o: SimOptions, id: NodeId, bootstrap: ClusterConfig): NodeConfig {
  const peers = [...bootstrap.voters, ...bootstrap.learners].filter((peer) => peer !== id);
  const peerHttp = new Map<NodeId, string>();
  for (const peer of peers) {
    const address = bootstrap.addresses?.[peer];
    if (address !== undefined) peerHttp.set(peer, address.http);
  }
  return {
    ...nodeDefaults,
    id,
    voters: bootstrap.voters,
    learners: bootstrap.learners,
    ...(bootstrap.addresses === undefined ? {} : { addresses: bootstrap.addresses }),
    clusterId: simClusterId,
    httpAddress: simAddress(id).http,
    peerHttp,
    tickMs: simTickMs,
    heartbeatMs: o.heartbeatTicks * simTickMs,
    missedHeartbeats: o.missedHeartbeats,
    electionJitter: o.electionJitter,
    preVote: o.preVote,
    checkQuorum: o.checkQuorum,
    appendEntriesInflightMax: o.appendEntriesInflightMax,
    appendEntriesEagerInflightMax: o.appendEntriesEagerInflightMax,
    appendEntriesBatchEntriesMax: o.appendEntriesBatchEntriesMax,
    appendEntriesBatchBytesMax: o.appendEntriesBatchBytesMax,
    durability: "majority",
    speculationAgeMsMax: o.speculationAgeTicksMax * simTickMs,
    snapshotEntries: o.snapshotEntries,
    snapshotLogBytes: nodeDefaults.snapshotLogBytes,
    compactionTrailEntries: o.compactionTrailEntries,
    logMemoryBytes: o.logMemoryBytes,
    snapshotChunkBytes: o.snapshotChunkBytes,
    snapshotWindowChunks: o.snapshotWindowChunks,
    snapshotAckTimeoutMs: o.snapshotAckTimeoutTicks * simTickMs,
    unsafeNodeBugs: o.unsafeNodeBugs,
    unsafeCoreBugs: o.unsafeTestBugs,
  };
}

/** What a node reports to the cluster, which owns the checkers. */
export type HostObserver = {
  observer(host: SimNodeHost): LoopObserver;
  discarded(host: SimNodeHost, entries: readonly LogEntry[]): void;
  fatal(host: SimNodeHost, error: Error): void;
  /** Every event the node logs (the cluster counts snapshot events). */
  logged(host: SimNodeHost, event: string): void;
};

const eventsKeptMax = 2_000;

export type SimClockSource = { nowTick(): number; nowMs(): number };

export class SimNodeHost {
  readonly id: NodeId;
  readonly disk = new SimDisk();
  incarnation = 0;
  pausedUntilTick = 0;
  node: BatonNode | null = null;
  store: Store | null = null;
  private log: SimLogStore | null = null;
  private timers: SimTimers | null = null;
  private transport: SimTransport | null = null;
  io = new SimIo();
  orphans: OrphanQuarantine | null = null;
  /** The previous incarnation's background work, which ends before the next boot. */
  private quiescing: Promise<void> = Promise.resolve();
  private nodeConfig: NodeConfig;
  private readonly directory: string;
  private readonly prng: Prng;
  private readonly fsyncTicksMax: number;
  private readonly network: SimNetwork;
  private readonly clock: SimClockSource;
  private readonly hooks: HostObserver;

  constructor(parts: {
    config: NodeConfig;
    directory: string;
    prng: Prng;
    fsyncTicksMax: number;
    network: SimNetwork;
    clock: SimClockSource;
    hooks: HostObserver;
  }) {
    this.id = parts.config.id;
    this.nodeConfig = parts.config;
    this.directory = parts.directory;
    this.prng = parts.prng;
    this.fsyncTicksMax = parts.fsyncTicksMax;
    this.network = parts.network;
    this.clock = parts.clock;
    this.hooks = parts.hooks;
    fs.mkdirSync(this.directory, { recursive: true });
  }

  get alive(): boolean {
    return this.node !== null;
  }

  get core(): RaftCore | null {
    return this.node?.loop.core ?? null;
  }

  get config(): NodeConfig {
    return this.nodeConfig;
  }

  get snapshotDirectory(): string {
    return path.join(this.directory, "snapshots");
  }

  /**
   * The disk is replaced: the log, the store file, the snapshots and the review files are gone.
   * The machine must be down; its previous incarnation's background work ends first.
   */
  async wipe(): Promise<void> {
    assert(this.node === null, `wipe of a live node ${this.id}`);
    await this.quiescing;
    this.disk.wipe();
    fs.rmSync(this.directory, { recursive: true, force: true });
    fs.mkdirSync(this.directory, { recursive: true });
  }

  /** The configuration the next boot starts from (a joined node's, from its join answer). */
  reconfigure(config: NodeConfig): void {
    assert(this.node === null && config.id === this.id, `reconfigure of a live node ${this.id}`);
    this.nodeConfig = config;
  }

  /** Starts a new incarnation from what the disk and the store file hold. */
  async boot(): Promise<void> {
    assert(this.node === null, `boot of a live node ${this.id}`);
    this.incarnation++;
    await this.quiescing;
    const clock = this.clock;
    this.io = new SimIo();
    this.log = new SimLogStore(this.disk, this.prng, this.fsyncTicksMax, () => clock.nowTick());
    this.timers = new SimTimers(() => clock.nowMs());
    const snapshotDirectory = this.snapshotDirectory;
    const paths = {
      logDirectory: path.join(this.directory, "log"),
      databasePath: path.join(this.directory, "baton.db"),
      snapshotDirectory,
    };
    // As `baton start` does: a database ahead of a log that lost entries is rewound.
    this.store = await openStoreBehindLog(paths, {}, this.log, (_level, event) => this.logged(event));
    const reconciled = await reconcileStorage({
      directory: snapshotDirectory,
      log: this.log,
      recovered: this.disk.recover(),
      store: this.store,
      logger: (_level, event) => this.logged(event),
    });
    reconciled.pending.catch((error: unknown) => this.hooks.fatal(this, error as Error));
    const orphans = OrphanQuarantine.open(path.join(this.directory, "review", "orphans.db"));
    this.orphans = orphans;
    const sink = quarantineSink(orphans);
    const config = this.nodeConfig;
    const node = new BatonNode(config, {
      clock: { nowMs: () => clock.nowMs(), monotonicMs: () => clock.nowMs() },
      timers: this.timers,
      randomSeed: this.prng.nextUint32(),
      log: this.log,
      recovered: reconciled.recovered,
      store: this.store,
      snapshotDirectory,
      io: this.io.run,
      transport: (handlers) => {
        this.transport = new SimTransport({
          selfId: this.id,
          peers: config.peerHttp.keys(),
          handlers,
          network: this.network,
          nowTick: () => clock.nowTick(),
        });
        return this.transport;
      },
      review: {
        keepDiscarded: (entries, atMs) => {
          this.hooks.discarded(this, entries);
          sink.keepDiscarded(entries, atMs);
        },
      },
      orphans,
      logger: (_level, event, fields) => {
        if (process.env.SIM_DEBUG_LOG !== undefined && /^(snapshot|store|consistency|wal)\./.test(event))
          console.log(`[${clock.nowTick()}] ${this.id}`, event, JSON.stringify(fields));
        this.logged(event);
      },
      onFatal: (error) => this.hooks.fatal(this, error),
      observer: this.hooks.observer(this),
    });
    this.node = node;
    await node.start();
  }

  /** Events this machine logged, the latest `eventsKeptMax` of them (scenarios look for some). */
  readonly events: string[] = [];

  private logged(event: string): void {
    this.events.push(event);
    if (this.events.length > eventsKeptMax) this.events.shift();
    this.hooks.logged(this, event);
  }

  /**
   * Changes a committed row in the (stopped) machine's database behind the store's back: damage
   * inside a row's content, which only comparing with the other replicas can find. `events`: the
   * newest row, which no write changes later, so only a consistency check can find it; `lists`: a
   * list gets a value no client appended, and the next write to that list does not apply here
   * (STORE_DIVERGED) before a check may find it. Returns whether there was a row to change.
   */
  changeRowSilently(delta = 1, table: "events" | "lists" = "events"): boolean {
    assert(this.node === null, `damage under a live node ${this.id}`);
    const file = path.join(this.directory, "baton.db");
    if (!fs.existsSync(file)) return false;
    const db = new DatabaseSync(file);
    try {
      const exists = db.prepare("SELECT 1 FROM sqlite_schema WHERE name = ?").get(table) !== undefined;
      if (!exists) return false;
      const change =
        table === "events"
          ? "UPDATE events SET noise = noise + ? WHERE id = (SELECT max(id) FROM events)"
          : "UPDATE lists SET items = items || ',' || ? WHERE key = (SELECT min(key) FROM lists)";
      return Number(db.prepare(change).run(delta).changes) > 0;
    } finally {
      db.close();
    }
  }

  crash(): void {
    assert(this.node !== null, `crash of a dead node ${this.id}`);
    this.timers?.clear();
    this.quiescing = this.io.kill();
    this.log?.crash();
    this.transport?.kill();
    this.store?.close();
    this.orphans?.close();
    this.orphans = null;
    this.node = null;
    this.store = null;
    this.log = null;
    this.timers = null;
    this.transport = null;
  }

  /** The part of one simulated tick that belongs to this machine: fsyncs, then timers. */
  completePersists(nowTick: number): void {
    this.log?.completeDue(nowTick);
  }

  fireTimers(): void {
    this.timers?.fireDue();
  }

  /** Runs the node's `soon` callbacks asked for so far; false when there were none. */
  fireSoon(): boolean {
    return this.timers?.fireSoon() ?? false;
  }

  deliver(from: NodeId, body: Uint8Array): void {
    this.transport?.receive(from, body);
  }

  /** Closes the store for good (end of run), once background file work has ended. */
  async dispose(): Promise<void> {
    if (this.node !== null) this.crash();
    await this.quiescing;
  }
}
