/**
 * The fault catalogue: how each kind is injected, held and healed, and what the node must do.
 *
 * One fault runs at a time: inject, hold for a seeded while, heal. Targets are picked by role
 * (the leader, or any node) with the seeded generator; who leads is read from the live cluster.
 * What a node must do is checked here and reported as an anomaly when it does not:
 *  - `fsync-fail`: the node exits with code 1 within `fatalWaitMs`;
 *  - `wal-torn`: the node starts, reports the cut tail and rejoins;
 *  - `wal-corrupt`, `db-damage`: the stopped node's own log or database is damaged; restarted, it
 *    must start, heal from its peers (`/v1/status` storage: no lost entries, no damage, verified)
 *    within `healWaitMs`, and serve nothing damaged meanwhile (the history checker sees every read).
 */
import type { Prng } from "../../src/lib/prng.ts";
import type { NemesisCluster } from "./nemesis-cluster.ts";
import { type NodeProcess, waitUntil } from "./node-processes.ts";
import type { CampaignOptions, FaultKind } from "./options.ts";
import {
  corruptLastWalRecord,
  corruptWalRecord,
  damageDatabase,
  fillDisk,
  tearWalTail,
  unfillDisk,
} from "./storage-faults.ts";

/** A node that must stop (failed fsync, full disk) is given this long. */
const fatalWaitMs = 20_000;
/** A restarted node, or a probe, must answer within this. */
const startWaitMs = 20_000;

export type Anomaly = { readonly kind: string; readonly message: string };

export type FaultRecord = {
  readonly kind: FaultKind;
  targets: string[];
  readonly startUs: number;
  healUs: number;
  notes: string[];
  /** Milliseconds from the heal to the first acknowledged append after it; null if none was. */
  recoverMs: number | null;
  /** The longest stretch without an acknowledged append, from the injection to that first one after the heal. */
  writeGapMs: number | null;
};

export type FaultContext = {
  readonly cluster: NemesisCluster;
  readonly prng: Prng;
  readonly options: CampaignOptions;
  readonly anomaly: (kind: string, message: string) => void;
  readonly log: (line: string) => void;
};

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function holdMs(context: FaultContext): number {
  return context.prng.intBetween(context.options.faultHoldMsMin, context.options.faultHoldMsMax);
}

/** The leader with probability `leaderChance` (when one is known), else any running node. */
async function pickTarget(
  context: FaultContext,
  record: FaultRecord,
  leaderChance = 0.5,
): Promise<NodeProcess> {
  const wantLeader = context.prng.chance(leaderChance);
  const running = context.cluster.nodes.filter((n) => n.running && !n.paused);
  const other = context.prng.pick(running.length > 0 ? running : context.cluster.nodes);
  const leader = await context.cluster.leader(wantLeader ? 3_000 : 500);
  const target = wantLeader ? (leader ?? other) : other;
  record.targets.push(target.id);
  record.notes.push(target === leader ? "the leader" : leader === null ? "no leader known" : "a follower");
  return target;
}

function shuffled<T>(items: readonly T[], prng: Prng): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = prng.intBetween(0, i);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

export async function runFault(kind: FaultKind, context: FaultContext): Promise<FaultRecord> {
  const record: FaultRecord = {
    kind,
    targets: [],
    startUs: context.cluster.nowUs(),
    healUs: 0,
    notes: [],
    recoverMs: null,
    writeGapMs: null,
  };
  switch (kind) {
    case "kill":
      await killFault(context, record);
      break;
    case "pause":
      await pauseFault(context, record);
      break;
    case "partition-leader":
    case "partition-halves":
    case "partition-bridge":
    case "partition-one-way":
      await partitionFault(kind, context, record);
      break;
    case "disk-full":
      await diskFullFault(context, record);
      break;
    case "fsync-slow":
      await fsyncSlowFault(context, record);
      break;
    case "fsync-fail":
      await fsyncFailFault(context, record);
      break;
    case "wal-torn":
      await walTornFault(context, record);
      break;
    case "wal-corrupt":
    case "db-damage":
      await damagedStorageFault(kind, context, record);
      break;
  }
  if (record.healUs === 0) record.healUs = context.cluster.nowUs();
  return record;
}

async function killFault(context: FaultContext, record: FaultRecord): Promise<void> {
  const target = await pickTarget(context, record);
  await target.kill("kill -9 fault");
  await sleep(holdMs(context));
  record.healUs = context.cluster.nowUs();
  context.cluster.start(target);
}

async function pauseFault(context: FaultContext, record: FaultRecord): Promise<void> {
  const target = await pickTarget(context, record);
  target.signal("SIGSTOP");
  await sleep(holdMs(context));
  record.healUs = context.cluster.nowUs();
  target.signal("SIGCONT");
}

async function partitionFault(kind: FaultKind, context: FaultContext, record: FaultRecord): Promise<void> {
  const lab = context.cluster.lab!;
  const count = context.cluster.nodes.length;
  const leader = await context.cluster.leader(3_000);
  const leaderIndex = leader?.spec.index ?? context.prng.intBetween(0, count - 1);
  const others = [...Array(count).keys()].filter((i) => i !== leaderIndex);
  const name = (indexes: readonly number[]): string => indexes.map((i) => `n${i + 1}`).join("+");
  if (kind === "partition-leader") {
    await lab.separate([leaderIndex], others);
    record.notes.push(`${name([leaderIndex])} (leader) | ${name(others)}`);
  } else if (kind === "partition-halves") {
    const minoritySize = Math.floor(count / 2);
    const order = shuffled(others, context.prng);
    const leaderInMinority = context.prng.chance(0.5);
    const minority = leaderInMinority
      ? [leaderIndex, ...order.slice(0, minoritySize - 1)]
      : order.slice(0, minoritySize);
    const majority = [...Array(count).keys()].filter((i) => !minority.includes(i));
    await lab.separate(minority, majority);
    record.notes.push(
      `minority ${name(minority)} | majority ${name(majority)}; leader was ${name([leaderIndex])}`,
    );
  } else if (kind === "partition-bridge") {
    const order = shuffled([...Array(count).keys()], context.prng);
    const bridge = order.pop()!;
    const sideA = order.slice(0, Math.floor(order.length / 2));
    const sideB = order.slice(Math.floor(order.length / 2));
    await lab.separate(sideA, sideB);
    record.notes.push(
      `${name(sideA)} | ${name(sideB)}, bridge ${name([bridge])} sees both; leader was ${name([leaderIndex])}`,
    );
  } else {
    const cannotSend = context.prng.chance(0.5);
    await lab.cutAll(
      others.map((other): [number, number] => (cannotSend ? [leaderIndex, other] : [other, leaderIndex])),
    );
    record.notes.push(
      `${name([leaderIndex])} (leader) ${cannotSend ? "cannot send to" : "cannot hear from"} ${name(others)}`,
    );
  }
  record.targets.push(...[...Array(count).keys()].map((i) => `n${i + 1}`));
  await sleep(holdMs(context));
  record.healUs = context.cluster.nowUs();
  await lab.heal();
}

async function diskFullFault(context: FaultContext, record: FaultRecord): Promise<void> {
  const target = context.cluster.diskNode!;
  record.targets.push(target.id);
  if (!target.running) context.cluster.start(target);
  target.expectExit("disk full");
  const bytes = await fillDisk(target.spec.dataDirectory);
  const exit = await target.waitExit(Math.max(holdMs(context), 10_000));
  if (exit === null) {
    target.clearExpectation();
    record.notes.push(
      `filled ${bytes} bytes; the node kept running (it wrote nothing it needed, or refuses writes)`,
    );
  } else {
    record.notes.push(
      `filled ${bytes} bytes; the node exited with code ${exit.code}${exit.signal ? ` (${exit.signal})` : ""}`,
    );
    if (exit.code !== 1)
      context.anomaly(
        "disk-full",
        `${target.id} exited with ${exit.code ?? exit.signal} on a full disk, not 1`,
      );
  }
  record.healUs = context.cluster.nowUs();
  unfillDisk(target.spec.dataDirectory);
  if (!target.running) context.cluster.start(target);
}

async function fsyncSlowFault(context: FaultContext, record: FaultRecord): Promise<void> {
  const target = await pickTarget(context, record);
  const delayMs = context.prng.intBetween(100, 500);
  record.notes.push(`every fsync delayed ${delayMs} ms`);
  target.setFsyncFault(`delay ${delayMs}`);
  await sleep(holdMs(context));
  record.healUs = context.cluster.nowUs();
  target.setFsyncFault("");
}

async function fsyncFailFault(context: FaultContext, record: FaultRecord): Promise<void> {
  const target = await pickTarget(context, record);
  target.expectExit("failed fsync");
  target.setFsyncFault("fail");
  const exit = await target.waitExit(fatalWaitMs);
  target.setFsyncFault("");
  if (exit === null) {
    context.anomaly("fsync-fail", `${target.id} still ran ${fatalWaitMs} ms after its fsyncs began to fail`);
    await target.kill("fsync-fail cleanup");
  } else {
    record.notes.push(
      `exited with code ${exit.code} ${((exit.atUs - record.startUs) / 1000).toFixed(0)} ms after fsync began to fail`,
    );
    if (exit.code !== 1)
      context.anomaly(
        "fsync-fail",
        `${target.id} exited with ${exit.code ?? exit.signal} after a failed fsync, not 1`,
      );
    if (!target.logTail(60).includes("EIO")) record.notes.push("its log does not name the EIO");
  }
  await sleep(holdMs(context) / 2);
  record.healUs = context.cluster.nowUs();
  context.cluster.start(target);
}

async function walTornFault(context: FaultContext, record: FaultRecord): Promise<void> {
  const target = await pickTarget(context, record);
  await target.kill("wal-torn fault");
  const note = tearWalTail(target.spec.dataDirectory, context.prng);
  record.notes.push(note ?? "no segment to tear");
  record.healUs = context.cluster.nowUs();
  context.cluster.start(target);
  const up = await waitUntil(startWaitMs, async () => ((await target.status()) === null ? null : true));
  const log = target.logTail(5_000);
  if (up === null)
    context.anomaly("wal-torn", `${target.id} did not start after a torn tail: ${log.slice(-800)}`);
  else if (note !== null && !log.includes("wal.torn-tail-cut"))
    context.anomaly("wal-torn", `${target.id} started without reporting the torn tail it had to cut`);
  else record.notes.push("started and reported the cut tail");
}

/** A node with damaged storage is given this long to heal from its peers after it starts. */
const healWaitMs = 30_000;

/**
 * Damages the stopped node's own files and restarts it: it must start, heal from its peers and
 * rejoin. What it serves meanwhile goes through the history checker like every other answer (a
 * damaged row served would be a read that is no prefix of its list's final value).
 */
async function damagedStorageFault(
  kind: "wal-corrupt" | "db-damage",
  context: FaultContext,
  record: FaultRecord,
): Promise<void> {
  const target = await pickTarget(context, record);
  await target.kill(`${kind} fault`);
  const directory = target.spec.dataDirectory;
  const note =
    kind === "db-damage"
      ? damageDatabase(directory, context.prng)
      : context.prng.chance(0.5)
        ? corruptWalRecord(directory, context.prng)
        : corruptLastWalRecord(directory, context.prng);
  record.notes.push(note ?? "nothing to damage yet");
  await sleep(holdMs(context) / 2);
  record.healUs = context.cluster.nowUs();
  context.cluster.start(target);
  if (note !== null) await judgeHealing(kind, context, target, record);
}

async function judgeHealing(
  kind: "wal-corrupt" | "db-damage",
  context: FaultContext,
  target: NodeProcess,
  record: FaultRecord,
): Promise<void> {
  const up = await waitUntil(startWaitMs, async () => ((await target.status()) === null ? null : true));
  if (up === null) {
    const line =
      target
        .logTail(40)
        .split("\n")
        .find((l) => /CORRUPT|NO_INTACT_COPY|fatal/.test(l)) ?? "";
    context.anomaly(
      kind,
      `${target.id} did not start on its damaged ${kind === "wal-corrupt" ? "log" : "database"}: ${line.slice(0, 300)}`,
    );
    return;
  }
  const healed = await waitUntil(healWaitMs, async () => {
    const storage = (await target.status())?.storage;
    return storage?.lostEntriesUntil === null && storage.damaged === null && storage.verified
      ? storage
      : null;
  });
  const log = target.logTail(400);
  const seen = ["wal.corruption-healed", "store.malformed", "consistency.damage-found", "store.healed"]
    .filter((event) => log.includes(`"${event}"`))
    .join(", ");
  if (healed === null) {
    const status = await target.status();
    context.anomaly(
      kind,
      `${target.id} did not heal within ${healWaitMs} ms (storage ${JSON.stringify(status?.storage)}; saw ${seen || "nothing"})`,
    );
    return;
  }
  if (kind === "wal-corrupt" && !log.includes('"wal.corruption-healed"'))
    context.anomaly(kind, `${target.id} started on a corrupted log without healing it (cut as a torn tail?)`);
  record.notes.push(
    `healed from its peers${seen === "" ? " (the damage changed nothing it holds)" : `: ${seen}`}`,
  );
}
