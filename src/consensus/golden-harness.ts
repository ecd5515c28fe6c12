/**
 * Interpreter for the golden scenario files in `testdata/` (after etcd's datadriven tests).
 *
 * Each command drives a small in-memory cluster of cores and returns the full trace it produced:
 * every step's Effects, every message delivered or dropped. The host behaviour is the simplest
 * correct one: a node in `auto` persist mode makes each Effects durable at once (then reports
 * `persisted`); in `manual` mode batches wait for a `persist` command, and so do their
 * `afterPersist` messages. Committed entries are applied at once. Pure: no I/O, no clock.
 *
 * Commands: add-nodes N [pre-vote=B] [check-quorum=B] [follower-reads=B] [inflight=N] [batch-entries=N]
 *   [heartbeat-ticks=N] [missed=N] [jitter=X] [bug=NAME] | campaign ID | tick ID [COUNT] |
 *   tick-election ID | deliver-msgs [ID...] | stabilize | propose ID DURABILITY [DATA] [timeout=N] |
 *   read ID | transfer ID TARGET | partition IDS / IDS | cut FROM TO | heal | persist-mode ID auto|manual |
 *   persist ID | status ID | log ID | compact ID INDEX | add-node ID [voters=A,B] [learners=C,D] |
 *   change ID addLearner|promote|demote|remove NODE [timeout=N] | config ID |
 *   failover ID [mode=M] [paused=B] [approve-timeout=MS] [policy=P] | member ID NODE [priority=N]
 *   [zone=Z] [never-promote=B] [witness=B] | promote ID | failover-status ID (see `golden-failover.ts`)
 *
 * Snapshots: a leader's `snapshotNeeded` is carried out by posting its `installSnapshot` header to
 * the peer (the data is implicit: the harness has no state machine); on delivery the peer steps it
 * and the leader steps `snapshotSent`, or `snapshotFailed` when the message is dropped.
 */
import { assert } from "../lib/assert.ts";
import { Prng } from "../lib/prng.ts";
import { type LogIndex, logIndex, type NodeId, nodeId, type Term, term } from "../types/ids.ts";
import { EntryKind } from "../types/log-entry.ts";
import { failoverSettingsOf, type MembershipChangeKind, membershipChangeKinds } from "./cluster-config.ts";
import { type Durability, durabilityLevels, type RaftConfig } from "./config.ts";
import type { Effects } from "./effects.ts";
import type { FailoverChange } from "./failover-config.ts";
import { formatFailoverStatus, memberChange, settingsChange } from "./golden-failover.ts";
import { formatEffects, formatEntry, formatMessage } from "./golden-format.ts";
import type { Input } from "./inputs.ts";
import type { Message } from "./messages.ts";
import { RaftCore } from "./raft-core.ts";

type Batch = { messages: Message[]; last: { index: LogIndex; term: Term } | null };

type HarnessNode = {
  readonly id: NodeId;
  readonly core: RaftCore;
  readonly inbox: Message[];
  autoPersist: boolean;
  readonly batches: Batch[];
  proposalSeq: number;
};

/** Rounds of delivery `stabilize` may run before it declares the cluster unstable. */
const stabilizeRoundsMax = 100;
/** Output lines one command may produce: a bound that turns a livelock into a readable failure. */
const outputLinesMax = 5000;

export class GoldenHarness {
  private readonly nodes = new Map<NodeId, HarnessNode>();
  private readonly blocked = new Set<string>();
  private output: string[] = [];
  /** The options and voters of the last `add-nodes`, reused by `add-node`. */
  private options = new Map<string, string>();
  private bootstrapVoters: NodeId[] = [];

  run(command: string, args: readonly string[]): string {
    this.output = [];
    const handler = this.commands[command];
    assert(handler !== undefined, `unknown golden command ${command}`);
    handler(args);
    return this.output.length === 0 ? "ok" : this.output.join("\n");
  }

  private readonly commands: Record<string, (args: readonly string[]) => void> = {
    "add-nodes": (args) => this.addNodes(args),
    campaign: ([id]) => this.step(this.node(id), { type: "campaign" }, "campaign"),
    tick: ([id, count]) => this.tick(this.node(id), Number(count ?? 1)),
    "tick-election": ([id]) => this.tickElection(this.node(id)),
    "deliver-msgs": (ids) =>
      this.deliver(ids.length === 0 ? [...this.nodes.keys()] : ids.map((id) => this.node(id).id)),
    stabilize: () => this.stabilize(),
    propose: (args) => this.propose(args),
    read: ([id]) => {
      const node = this.node(id);
      this.step(
        node,
        { type: "readIndex", requestId: `r${++node.proposalSeq}` },
        `read r${node.proposalSeq}`,
      );
    },
    transfer: ([id, target]) =>
      this.step(
        this.node(id),
        target === undefined
          ? { type: "transferLeadership" }
          : { type: "transferLeadership", target: this.node(target).id },
        `transfer to ${target ?? "best"}`,
      ),
    failover: ([id, ...rest]) => this.changeFailover(this.node(id), settingsChange(rest)),
    member: ([id, ...rest]) => this.changeFailover(this.node(id), memberChange(rest)),
    promote: ([id]) => {
      const node = this.node(id);
      const requestId = `q${++node.proposalSeq}`;
      this.step(node, { type: "promoteLeader", requestId }, `promote ${requestId}`);
    },
    "failover-status": ([id]) => {
      const node = this.node(id);
      for (const line of formatFailoverStatus(node.id, node.core.status().failover)) this.print(line);
    },
    partition: (args) => this.partition(args),
    cut: ([from, to]) => this.blocked.add(`${this.node(from).id}>${this.node(to).id}`),
    heal: () => this.blocked.clear(),
    "persist-mode": ([id, mode]) => {
      assert(mode === "auto" || mode === "manual", "persist-mode is auto or manual");
      this.node(id).autoPersist = mode === "auto";
    },
    persist: ([id]) => this.persistAll(this.node(id)),
    status: ([id]) => this.status(this.node(id)),
    log: ([id]) => this.log(this.node(id)),
    "add-node": (args) => this.addNode(args),
    change: (args) => this.change(args),
    config: ([id]) => this.config(this.node(id)),
    compact: ([id, index]) => {
      const node = this.node(id);
      const at = logIndex(Number(index));
      const atTerm = node.core.termAt(at);
      assert(atTerm !== undefined, `no entry ${at} to compact at`);
      this.step(node, { type: "compact", index: at, term: atTerm }, `compact ${at}`);
    },
  };

  /** The core of node `id`, for tests that inspect state after a script. */
  core(id: string): RaftCore {
    return this.node(id).core;
  }

  private node(id: string | undefined): HarnessNode {
    const node = this.nodes.get(nodeId(id ?? "?"));
    assert(node !== undefined, `unknown node ${id}`);
    return node;
  }

  private addNodes(args: readonly string[]): void {
    const count = Number(args[0]);
    assert(Number.isInteger(count) && count >= 1, "add-nodes needs a count");
    this.options = new Map(args.slice(1).map((arg) => arg.split("=") as [string, string]));
    const voters = Array.from({ length: count }, (_, i) => nodeId(String(i + 1)));
    this.bootstrapVoters = voters;
    for (const id of voters) this.createNode(id, voters, []);
  }

  /** A node joining later: by default with the cluster's bootstrap voters and itself as a learner. */
  private addNode(args: readonly string[]): void {
    const [id, ...rest] = args;
    const option = (name: string) =>
      rest
        .find((arg) => arg.startsWith(`${name}=`))
        ?.slice(name.length + 1)
        .split(",")
        .filter((member) => member !== "")
        .map(nodeId);
    const self = nodeId(id ?? "?");
    assert(!this.nodes.has(self), `node ${self} exists`);
    this.createNode(self, option("voters") ?? this.bootstrapVoters, option("learners") ?? [self]);
  }

  private createNode(id: NodeId, voters: readonly NodeId[], learners: readonly NodeId[]): void {
    const options = this.options;
    const bug = options.get("bug");
    const config: RaftConfig = {
      id,
      voters,
      learners,
      tickMs: 10,
      heartbeatIntervalMs: 10 * Number(options.get("heartbeat-ticks") ?? 1),
      missedHeartbeats: Number(options.get("missed") ?? 10),
      electionJitter: Number(options.get("jitter") ?? 0.5),
      preVote: options.get("pre-vote") !== "false",
      checkQuorum: options.get("check-quorum") !== "false",
      followerReadIndex: options.get("follower-reads") === "true",
      appendEntriesInflightMax: Number(options.get("inflight") ?? 4),
      // Scenarios written before eager sending was bounded send every proposal at once (`eager`).
      appendEntriesEagerInflightMax: Number(options.get("eager") ?? options.get("inflight") ?? 4),
      appendEntriesBatchEntriesMax: Number(options.get("batch-entries") ?? 16),
      proposalTimeoutMs: 10 * Number(options.get("proposal-timeout-ticks") ?? 100),
      prng: new Prng(Number(id)),
      ...(bug === undefined ? {} : { unsafeTestBugs: { [bug]: true } }),
    };
    const initial = {
      hardState: { term: term(0), votedFor: null },
      entries: [],
      snapshotIndex: logIndex(0),
      snapshotTerm: term(0),
      appliedIndex: logIndex(0),
    };
    const core = new RaftCore(config, initial);
    this.nodes.set(id, { id, core, inbox: [], autoPersist: true, batches: [], proposalSeq: 0 });
    const { electionTimeoutTicks, electionTimeoutTicksMax, heartbeatIntervalTicks } = core.config;
    const learnerList = learners.length === 0 ? "" : ` learners=[${learners.join(",")}]`;
    this.output.push(
      `node ${id} voters=[${voters.join(",")}]${learnerList} heartbeat=${heartbeatIntervalTicks} election-timeout=${electionTimeoutTicks}..${electionTimeoutTicksMax} ticks`,
    );
  }

  private change(args: readonly string[]): void {
    const [id, kind, target, ...rest] = args;
    const node = this.node(id);
    assert(membershipChangeKinds.includes(kind as MembershipChangeKind), `unknown change ${kind}`);
    const timeout = rest.find((arg) => arg.startsWith("timeout="))?.slice("timeout=".length);
    const proposalId = `p${++node.proposalSeq}`;
    this.step(
      node,
      {
        type: "changeMembership",
        proposalId,
        change: { kind: kind as MembershipChangeKind, node: nodeId(target ?? "?") },
        ...(timeout === undefined ? {} : { timeoutTicks: Number(timeout) }),
      },
      `change ${proposalId} ${kind} ${target}`,
    );
  }

  private changeFailover(node: HarnessNode, change: FailoverChange): void {
    const proposalId = `p${++node.proposalSeq}`;
    const what = change.kind === "settings" ? "settings" : `member ${change.node}`;
    this.step(node, { type: "changeFailover", proposalId, change }, `failover ${proposalId} ${what}`);
  }

  private config(node: HarnessNode): void {
    const status = node.core.status();
    const { clusterConfig, clusterConfigIndex, snapshotConfig } = status;
    const committed = clusterConfigIndex <= status.commitIndex ? "committed" : "uncommitted";
    this.print(
      `${node.id} config index=${clusterConfigIndex} ${committed} voters=[${clusterConfig.voters.join(",")}] learners=[${clusterConfig.learners.join(",")}] snapshot=${status.snapshotIndex} voters=[${snapshotConfig.voters.join(",")}] learners=[${snapshotConfig.learners.join(",")}]`,
    );
    for (const [name, config] of [
      ["failover", clusterConfig],
      ["snapshot failover", snapshotConfig],
    ] as const) {
      if (config.failover !== undefined || config.members !== undefined)
        this.print(
          `  ${name}=${JSON.stringify(failoverSettingsOf(config))} members=${JSON.stringify(config.members ?? [])}`,
        );
    }
    for (const m of status.members)
      this.print(`  ${m.id} ${m.role} ${m.state} match=${m.matchIndex} applied=${m.appliedIndex}`);
  }

  /** Steps one input and carries out the Effects like a host would, printing everything. */
  private step(node: HarnessNode, input: Input, label: string): void {
    const effects = node.core.step(input);
    const lines = formatEffects(effects);
    if (input.type === "tick" && lines.length === 0) return;
    this.print(`> ${node.id} ${label}`);
    for (const line of lines) this.print(`  ${line}`);
    this.carryOut(node, effects);
  }

  private print(line: string): void {
    assert(this.output.length < outputLinesMax, "golden command produced too much output (livelock?)");
    this.output.push(line);
  }

  private carryOut(node: HarnessNode, effects: Effects): void {
    const later: Message[] = [];
    for (const { message, afterPersist } of effects.messages) {
      if (afterPersist) later.push(message);
      else this.post(message);
    }
    const lastEntry = effects.entries.at(-1);
    const hasBatch =
      effects.entries.length > 0 ||
      effects.hardState !== undefined ||
      effects.truncateAfter !== undefined ||
      effects.snapshotRestored !== undefined;
    const lastBatch = node.batches.at(-1);
    if (!hasBatch && lastBatch !== undefined) lastBatch.messages.push(...later);
    else if (hasBatch || later.length > 0)
      node.batches.push({
        messages: later,
        last: lastEntry === undefined ? null : { index: lastEntry.index, term: lastEntry.term },
      });
    if (node.autoPersist) this.persistAll(node);
    const status = node.core.status();
    if (status.applyThrough > status.appliedIndex) {
      this.step(node, { type: "applied", index: status.applyThrough }, `applied ${status.applyThrough}`);
    }
    for (const needed of effects.snapshotNeeded) this.post(needed.message);
  }

  private persistAll(node: HarnessNode): void {
    while (node.batches.length > 0) {
      const batch = node.batches.shift();
      assert(batch !== undefined, "batch queue hole");
      for (const message of batch.messages) this.post(message);
      if (batch.last !== null)
        this.step(
          node,
          { type: "persisted", ...batch.last },
          `persisted ${batch.last.index}/${batch.last.term}`,
        );
    }
  }

  private post(message: Message): void {
    const target = this.nodes.get(message.to);
    assert(target !== undefined, `message to unknown node ${message.to}`);
    target.inbox.push(message);
  }

  private deliver(ids: readonly NodeId[]): boolean {
    let delivered = false;
    for (const id of ids) {
      const node = this.node(id);
      const messages = node.inbox.splice(0);
      for (const message of messages) {
        delivered = true;
        if (this.blocked.has(`${message.from}>${message.to}`)) {
          this.print(`> ${id} drop ${formatMessage(message)}`);
          if (message.type === "installSnapshot")
            this.step(
              this.node(message.from),
              { type: "snapshotFailed", peer: message.to },
              `snapshot-failed ${message.to}`,
            );
          continue;
        }
        this.step(node, { type: "message", message }, `receive ${formatMessage(message)}`);
        if (message.type === "installSnapshot") {
          const { snapshotIndex: index, snapshotTerm } = message;
          this.step(
            this.node(message.from),
            { type: "snapshotSent", peer: message.to, index, term: snapshotTerm },
            `snapshot-sent ${message.to} ${index}/${snapshotTerm}`,
          );
        }
      }
    }
    return delivered;
  }

  private stabilize(): void {
    for (let round = 0; round < stabilizeRoundsMax; round++) {
      if (!this.deliver([...this.nodes.keys()])) return;
    }
    assert(false, `cluster did not stabilize within ${stabilizeRoundsMax} rounds`);
  }

  private tick(node: HarnessNode, count: number): void {
    assert(Number.isInteger(count) && count >= 1, "tick count must be positive");
    for (let i = 0; i < count; i++)
      this.step(node, { type: "tick" }, `tick ${node.core.status().nowTick + 1}`);
  }

  private tickElection(node: HarnessNode): void {
    const ticksMax = node.core.config.electionTimeoutTicksMax + 1;
    const startTerm = node.core.status().term;
    for (let i = 0; i < ticksMax; i++) {
      const before = this.output.length;
      this.step(node, { type: "tick" }, `tick ${node.core.status().nowTick + 1}`);
      if (
        this.output.slice(before).some((line) => line.includes("election-started")) ||
        node.core.status().term !== startTerm
      )
        return;
    }
  }

  private propose(args: readonly string[]): void {
    const [id, durability, data, ...rest] = args;
    const node = this.node(id);
    assert(durabilityLevels.includes(durability as Durability), `unknown durability ${durability}`);
    const timeout = rest.find((arg) => arg.startsWith("timeout="))?.slice("timeout=".length);
    const proposalId = `p${++node.proposalSeq}`;
    this.step(
      node,
      {
        type: "propose",
        proposalId,
        kind: EntryKind.command,
        data: new TextEncoder().encode(data ?? proposalId),
        durability: durability as Durability,
        ...(timeout === undefined ? {} : { timeoutTicks: Number(timeout) }),
      },
      `propose ${proposalId} ${durability}`,
    );
  }

  private partition(args: readonly string[]): void {
    const split = args.indexOf("/");
    assert(split > 0, "partition needs two groups separated by /");
    const left = args.slice(0, split).map((id) => this.node(id).id);
    const right = args.slice(split + 1).map((id) => this.node(id).id);
    for (const a of left) {
      for (const b of right) {
        this.blocked.add(`${a}>${b}`);
        this.blocked.add(`${b}>${a}`);
      }
    }
  }

  private status(node: HarnessNode): void {
    const s = node.core.status();
    this.print(
      `${s.id} ${s.role} term=${s.term} vote=${s.votedFor ?? "none"} leader=${s.leaderId ?? "none"} last=${s.lastIndex}/${s.lastTerm} commit=${s.commitIndex} durable=${s.durableIndex} applied=${s.appliedIndex} snapshot=${s.snapshotIndex}/${s.snapshotTerm}`,
    );
    for (const m of s.members)
      this.print(`  ${m.id} ${m.state} match=${m.matchIndex} next=${m.nextIndex} applied=${m.appliedIndex}`);
  }

  private log(node: HarnessNode): void {
    const s = node.core.status();
    const lines: string[] = [];
    for (let index = s.snapshotIndex + 1; index <= s.lastIndex; index++) {
      const entry = node.core.entryAt(index);
      assert(entry !== undefined, "log hole");
      lines.push(formatEntry(entry));
    }
    this.print(`${node.id} log: ${lines.length === 0 ? "(empty)" : lines.join(", ")}`);
  }
}
