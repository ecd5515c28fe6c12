/**
 * The replicated cluster configuration: who votes and who only receives the log.
 *
 * A configuration is `{voters, learners}`. Voters elect leaders and form every quorum (commit,
 * election, read-index confirmation, check-quorum, the `one` and `all` durability levels). Learners
 * receive the log and never campaign and never count toward any quorum. The configuration travels
 * in the log as the data of an `EntryKind.config` entry, which always holds the whole new
 * configuration (never a delta), and in snapshots as the configuration at the snapshot index.
 *
 * Encoding (version 1): compact UTF-8 JSON `{"v":1,"voters":[...],"learners":[...]}`, byte for byte
 * the output of `encodeClusterConfig` (any other spelling is refused, so decoding and re-encoding
 * is the identity). Human readable in golden traces and the WAL, and small: at most
 * `votersMax + learnersMax` ids of at most 64 bytes.
 *
 * Invariants of a valid configuration: 1 to `votersMax` voters, 0 to `learnersMax` learners, every
 * id a valid node id, no id twice (across both lists). A configuration entry the core cannot decode
 * is a bug (the leader encoded it and the log is checksummed), so decoding asserts; the transport
 * codec, which must not trust the wire, uses `parseClusterConfig` instead.
 *
 * Changes are single-server (Ongaro's dissertation §4.1): each adds, promotes, demotes or removes
 * exactly one node, so the majorities of the old and new voter sets always overlap.
 */
import { assert } from "../lib/assert.ts";
import type { NodeId } from "../types/ids.ts";

/**
 * Where a member listens: `raft` for peers' consensus traffic, `http` for clients and operators,
 * each `host:port` (IPv6 hosts in brackets). Opaque to the core, which only carries them with the
 * configuration so that every node, a new one included, learns whom to dial from the log itself.
 */
export type MemberAddress = { readonly raft: string; readonly http: string };

export type ClusterConfig = {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** Addresses of members (keyed by id; members without one are dialled from local configuration). */
  readonly addresses?: Readonly<Record<string, MemberAddress>>;
};

/** A cluster larger than this is almost certainly a configuration mistake (and quorum math is O(n log n) per ack). */
export const votersMax = 15;
/** Non-voting members a configuration may hold (each costs the leader one replication stream). */
export const learnersMax = 15;
export const clusterConfigVersion = 1;

export type MembershipChangeKind = "addLearner" | "promote" | "demote" | "remove";
export const membershipChangeKinds: readonly MembershipChangeKind[] = [
  "addLearner",
  "promote",
  "demote",
  "remove",
];

/**
 * One single-server change (dissertation §4.1). `address` is recorded for the node by `addLearner`
 * (and replaces a recorded one on any other change of that node); `remove` forgets it.
 */
export type MembershipChange = {
  readonly kind: MembershipChangeKind;
  readonly node: NodeId;
  readonly address?: MemberAddress;
};

/**
 * Why the leader refused a membership change for a reason of the configuration itself. Permanent
 * codes: callers match on them.
 */
export type MembershipRejectionCode =
  /** The previous configuration entry is not committed yet: one change at a time. */
  | "MEMBERSHIP_CHANGE_PENDING"
  /** `addLearner` of a node that is already a voter or a learner. */
  | "NODE_ALREADY_MEMBER"
  /** `promote`, `demote` or `remove` of a node that is not in the configuration. */
  | "NODE_NOT_MEMBER"
  /** `promote` of a node that is a voter already. */
  | "NODE_NOT_LEARNER"
  /** `demote` of a node that is a learner already. */
  | "NODE_NOT_VOTER"
  /** `demote` or `remove` of the last voter. */
  | "NO_VOTER_LEFT"
  /** `promote` beyond `votersMax`. */
  | "VOTERS_TOO_MANY"
  /** `addLearner` or `demote` beyond `learnersMax`. */
  | "LEARNERS_TOO_MANY";

const nodeIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** `host:port` or `[v6]:port`; the host at most 253 characters. */
const hostPortPattern = /^(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9_.-]{1,253}):[0-9]{1,5}$/;

/** Null for a well-formed address, otherwise what is wrong with it. */
export function memberAddressProblem(address: unknown): string | null {
  if (typeof address !== "object" || address === null) return "an address must be {raft, http}";
  const { raft, http, ...rest } = address as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return `unknown address fields ${Object.keys(rest).join(", ")}`;
  for (const [name, value] of [
    ["raft", raft],
    ["http", http],
  ] as const) {
    if (typeof value !== "string" || !hostPortPattern.test(value))
      return `${name} address must be host:port, not ${JSON.stringify(value)}`;
    const port = Number(value.slice(value.lastIndexOf(":") + 1));
    if (port < 1 || port > 65535) return `${name} port out of range in ${value}`;
  }
  return null;
}
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** Null for a valid configuration, otherwise what is wrong with it. */
export function clusterConfigProblem(config: ClusterConfig): string | null {
  const { voters, learners } = config;
  if (!Array.isArray(voters) || !Array.isArray(learners)) return "voters and learners must be lists";
  if (voters.length < 1 || voters.length > votersMax) return `1 to ${votersMax} voters`;
  if (learners.length > learnersMax) return `at most ${learnersMax} learners`;
  const seen = new Set<string>();
  for (const id of [...voters, ...learners]) {
    if (typeof id !== "string" || !nodeIdPattern.test(id)) return `bad node id ${JSON.stringify(id)}`;
    if (seen.has(id)) return `node ${id} listed twice`;
    seen.add(id);
  }
  const addresses = config.addresses;
  if (addresses === undefined) return null;
  if (typeof addresses !== "object" || addresses === null || Array.isArray(addresses))
    return "addresses must be an object";
  for (const [id, address] of Object.entries(addresses)) {
    if (!seen.has(id)) return `address of ${JSON.stringify(id)}, which is not a member`;
    const problem = memberAddressProblem(address);
    if (problem !== null) return `node ${id}: ${problem}`;
  }
  return null;
}

export function assertValidClusterConfig(config: ClusterConfig): void {
  const problem = clusterConfigProblem(config);
  assert(problem === null, `invalid cluster configuration: ${problem}`);
}

/** Addresses in member order (voters, then learners), or undefined when there are none. */
function orderedAddresses(config: ClusterConfig): Record<string, MemberAddress> | undefined {
  const addresses = config.addresses;
  if (addresses === undefined) return undefined;
  const ordered: Record<string, MemberAddress> = {};
  for (const id of [...config.voters, ...config.learners]) {
    const address = addresses[id];
    if (address !== undefined) ordered[id] = { raft: address.raft, http: address.http };
  }
  return Object.keys(ordered).length === 0 ? undefined : ordered;
}

function canonicalText(config: ClusterConfig): string {
  const addresses = orderedAddresses(config);
  const { voters, learners } = config;
  return JSON.stringify(
    addresses === undefined
      ? { v: clusterConfigVersion, voters, learners }
      : { v: clusterConfigVersion, voters, learners, addresses },
  );
}

/** A deep copy in canonical shape (no `addresses` key when there are none). */
export function copyClusterConfig(config: ClusterConfig): ClusterConfig {
  const addresses = orderedAddresses(config);
  const copy = { voters: [...config.voters], learners: [...config.learners] };
  return addresses === undefined ? copy : { ...copy, addresses };
}

/** The canonical text of a configuration (what its entry's data holds, as a string). Asserts it is valid. */
export function clusterConfigText(config: ClusterConfig): string {
  assertValidClusterConfig(config);
  return canonicalText(config);
}

/** The data of a configuration entry. Asserts the configuration is valid. */
export function encodeClusterConfig(config: ClusterConfig): Uint8Array {
  assertValidClusterConfig(config);
  return textEncoder.encode(canonicalText(config));
}

/** For untrusted bytes: the configuration, or a description of what is wrong. */
export function parseClusterConfig(data: Uint8Array): ClusterConfig | { readonly problem: string } {
  let text: string;
  let value: unknown;
  try {
    text = textDecoder.decode(data);
    value = JSON.parse(text);
  } catch {
    return { problem: "not UTF-8 JSON" };
  }
  if (typeof value !== "object" || value === null) return { problem: "not an object" };
  const { v, voters, learners, addresses } = value as Record<string, unknown>;
  if (v !== clusterConfigVersion) return { problem: `unknown version ${String(v)}` };
  const config = (
    addresses === undefined ? { voters, learners } : { voters, learners, addresses }
  ) as ClusterConfig;
  const problem = clusterConfigProblem(config);
  if (problem !== null) return { problem };
  if (canonicalText(config) !== text) return { problem: "not in canonical form" };
  return copyClusterConfig(config);
}

/** The configuration in a configuration entry's data. A bad one is a bug: asserts. */
export function decodeClusterConfig(data: Uint8Array): ClusterConfig {
  const parsed = parseClusterConfig(data);
  assert(
    !("problem" in parsed),
    `undecodable configuration entry: ${"problem" in parsed ? parsed.problem : ""}`,
  );
  return parsed;
}

export function isVoter(config: ClusterConfig, id: NodeId): boolean {
  return config.voters.includes(id);
}

export function isLearner(config: ClusterConfig, id: NodeId): boolean {
  return config.learners.includes(id);
}

export function isMember(config: ClusterConfig, id: NodeId): boolean {
  return isVoter(config, id) || isLearner(config, id);
}

/** Every member but `self`: the nodes a leader replicates to. */
export function membersExcept(config: ClusterConfig, self: NodeId): NodeId[] {
  return [...config.voters, ...config.learners].filter((id) => id !== self);
}

export function sameClusterConfig(a: ClusterConfig, b: ClusterConfig): boolean {
  return canonicalText(a) === canonicalText(b);
}

function rejectionFor(config: ClusterConfig, change: MembershipChange): MembershipRejectionCode | null {
  const { kind, node } = change;
  const voter = isVoter(config, node);
  const learner = isLearner(config, node);
  if (kind === "addLearner") {
    if (voter || learner) return "NODE_ALREADY_MEMBER";
    return config.learners.length >= learnersMax ? "LEARNERS_TOO_MANY" : null;
  }
  if (!voter && !learner) return "NODE_NOT_MEMBER";
  if (kind === "promote") {
    if (!learner) return "NODE_NOT_LEARNER";
    return config.voters.length >= votersMax ? "VOTERS_TOO_MANY" : null;
  }
  if (kind === "demote") {
    if (!voter) return "NODE_NOT_VOTER";
    if (config.learners.length >= learnersMax) return "LEARNERS_TOO_MANY";
  }
  // demote or remove: a configuration without a voter could never elect a leader again.
  return voter && config.voters.length === 1 ? "NO_VOTER_LEFT" : null;
}

/** The configuration after `change`, or why the change is refused. Never changes more than one node. */
export function applyMembershipChange(
  config: ClusterConfig,
  change: MembershipChange,
): ClusterConfig | MembershipRejectionCode {
  assert(membershipChangeKinds.includes(change.kind), `unknown membership change ${String(change.kind)}`);
  const rejection = rejectionFor(config, change);
  if (rejection !== null) return rejection;
  const { kind, node } = change;
  if (change.address !== undefined) {
    const problem = memberAddressProblem(change.address);
    assert(problem === null, `bad member address: ${problem}`);
  }
  const voters = config.voters.filter((id) => id !== node);
  const learners = config.learners.filter((id) => id !== node);
  if (kind === "addLearner" || kind === "demote") learners.push(node);
  if (kind === "promote") voters.push(node);
  const addresses: Record<string, MemberAddress> = { ...(config.addresses ?? {}) };
  delete addresses[node];
  const kept = kind === "remove" ? undefined : (change.address ?? config.addresses?.[node]);
  if (kept !== undefined) addresses[node] = kept;
  const next = copyClusterConfig({ voters, learners, addresses });
  assertValidClusterConfig(next);
  const added = voters.filter((id) => !config.voters.includes(id)).length;
  const removed = config.voters.filter((id) => !voters.includes(id)).length;
  assert(added + removed <= 1, "a single-server change changes at most one voter");
  return next;
}
