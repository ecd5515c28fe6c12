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
 *
 * Version 2 adds the failover settings and member attributes (`failover-config.ts`). A configuration
 * using only their defaults is still written as version 1, so a cluster that never sets them writes
 * exactly the bytes it wrote before they existed, and a version 1 entry reads as the defaults.
 * In memory a configuration is normalized: `failover` only when some setting differs from its
 * default, `members` only when some member has a non-default attribute (ordered by id, default
 * members left out). `normalizeClusterConfig` makes any valid configuration so.
 *
 * Either version may carry `addresses`: each member's `{raft, http}` address, in member order
 * (voters, then learners), only when some member has one. A node learns whom to dial from them.
 */
import { assert } from "../lib/assert.ts";
import type { NodeId } from "../types/ids.ts";
import {
  type FailoverChange,
  type FailoverChangeRejectionCode,
  type FailoverSettings,
  failoverDefaults,
  failoverSettingsProblem,
  isDefaultMember,
  type MemberAttributes,
  type MemberAttributesEntry,
  memberAttributesProblem,
  memberDefaults,
  memberJson,
  overlay,
  parseFailoverJson,
  parseMemberJson,
  sameFailoverSettings,
} from "./failover-config.ts";

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
  /** The cluster's failover settings; absent means `failoverDefaults` (every version 1 configuration). */
  readonly failover?: FailoverSettings;
  /** Members with a non-default attribute; absent means every member has the defaults. */
  readonly members?: readonly MemberAttributesEntry[];
};

/** A cluster larger than this is almost certainly a configuration mistake (and quorum math is O(n log n) per ack). */
export const votersMax = 15;
/** Non-voting members a configuration may hold (each costs the leader one replication stream). */
export const learnersMax = 15;
/** The version written when failover settings and member attributes are all defaults. */
export const clusterConfigVersion = 1;
/** The version written otherwise. */
export const clusterConfigVersionFailover = 2;

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
  | "LEARNERS_TOO_MANY"
  /** `demote` or `remove` of the last voter that may lead (the others are witnesses or never-promote). */
  | "NO_ELIGIBLE_VOTER";

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

/** What is wrong with the addresses of a configuration whose members are `members`. */
function addressesProblem(config: ClusterConfig, members: ReadonlySet<string>): string | null {
  const addresses = config.addresses;
  if (addresses === undefined) return null;
  if (typeof addresses !== "object" || addresses === null || Array.isArray(addresses))
    return "addresses must be an object";
  for (const [id, address] of Object.entries(addresses)) {
    if (!members.has(id)) return `address of ${JSON.stringify(id)}, which is not a member`;
    const problem = memberAddressProblem(address);
    if (problem !== null) return `node ${id}: ${problem}`;
  }
  return null;
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
  return addressesProblem(config, seen) ?? failoverPartProblem(config, seen);
}

/** What is wrong with the settings and member attributes of a configuration whose members are valid. */
function failoverPartProblem(config: ClusterConfig, members: ReadonlySet<string>): string | null {
  if (config.failover !== undefined) {
    const problem = failoverSettingsProblem(config.failover);
    if (problem !== null) return problem;
  }
  const entries = config.members ?? [];
  if (!Array.isArray(entries)) return "members must be a list";
  const seen = new Set<string>();
  for (const entry of entries) {
    if (!members.has(entry.id)) return `attributes for ${JSON.stringify(entry.id)}, not a member`;
    if (seen.has(entry.id)) return `attributes for ${entry.id} listed twice`;
    seen.add(entry.id);
    const problem = memberAttributesProblem(entry);
    if (problem !== null) return `member ${entry.id}: ${problem}`;
  }
  return hasEligibleVoter(config) ? null : "no voter may lead";
}

export function assertValidClusterConfig(config: ClusterConfig): void {
  const problem = clusterConfigProblem(config);
  assert(problem === null, `invalid cluster configuration: ${problem}`);
}

/** The same configuration in normal form (fresh arrays; defaults left out, members ordered by id). */
export function normalizeClusterConfig(config: ClusterConfig): ClusterConfig {
  const failover = config.failover;
  const members = (config.members ?? [])
    .filter((entry) => !isDefaultMember(entry))
    .map(({ id, priority, zone, neverPromote, witness }) => ({ id, priority, zone, neverPromote, witness }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const addresses = orderedAddresses(config);
  return {
    voters: [...config.voters],
    learners: [...config.learners],
    ...(addresses === undefined ? {} : { addresses }),
    ...(failover === undefined || sameFailoverSettings(failover, failoverDefaults)
      ? {}
      : {
          failover: {
            mode: failover.mode,
            paused: failover.paused,
            approveTimeoutMs: failover.approveTimeoutMs,
            approvePolicy: failover.approvePolicy,
          },
        }),
    ...(members.length === 0 ? {} : { members }),
  };
}

function canonicalText(config: ClusterConfig): string {
  const { voters, learners, failover, members, addresses } = normalizeClusterConfig(config);
  const located = addresses === undefined ? {} : { addresses };
  if (failover === undefined && members === undefined)
    return JSON.stringify({ v: clusterConfigVersion, voters, learners, ...located });
  return JSON.stringify({
    v: clusterConfigVersionFailover,
    voters,
    learners,
    failover: failover ?? failoverDefaults,
    members: (members ?? []).map(memberJson),
    ...located,
  });
}

/** The canonical text of a configuration (what its entry's data holds, as a string). Asserts it is valid. */
export function clusterConfigText(config: ClusterConfig): string {
  assertValidClusterConfig(config);
  return canonicalText(config);
}

/** The configuration a version 1 or 2 JSON value holds (not yet validated), or what is wrong with it. */
function fromJson(value: Record<string, unknown>): ClusterConfig | { readonly problem: string } {
  const { v, voters, learners } = value;
  const located = value.addresses === undefined ? {} : { addresses: value.addresses };
  if (v === clusterConfigVersion) return { voters, learners, ...located } as ClusterConfig;
  if (v !== clusterConfigVersionFailover) return { problem: `unknown version ${String(v)}` };
  const failover = parseFailoverJson(value.failover);
  if ("problem" in failover) return failover;
  if (!Array.isArray(value.members)) return { problem: "members must be a list" };
  const members: MemberAttributesEntry[] = [];
  for (const member of value.members) {
    const parsed = parseMemberJson(member);
    if ("problem" in parsed) return parsed;
    members.push(parsed);
  }
  return { voters, learners, failover, members, ...located } as ClusterConfig;
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
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { problem: "not an object" };
  const config = fromJson(value as Record<string, unknown>);
  if ("problem" in config) return config;
  const problem = clusterConfigProblem(config);
  if (problem !== null) return { problem };
  if (canonicalText(config) !== text) return { problem: "not in canonical form" };
  return normalizeClusterConfig(config);
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

/**
 * The same configuration but for addresses. A configuration that comes from no entry (the
 * bootstrap one) carries the addresses each node was started with, which may be spelled differently.
 */
export function sameMembersAndSettings(a: ClusterConfig, b: ClusterConfig): boolean {
  return sameClusterConfig({ ...a, addresses: undefined }, { ...b, addresses: undefined });
}

/** Whether two configurations have the same failover settings and member attributes (members aside). */
export function sameFailoverPart(a: ClusterConfig, b: ClusterConfig): boolean {
  const part = (config: ClusterConfig) => {
    const { failover, members } = normalizeClusterConfig(config);
    return JSON.stringify([failover ?? failoverDefaults, (members ?? []).map(memberJson)]);
  };
  return part(a) === part(b);
}

export function failoverSettingsOf(config: ClusterConfig): FailoverSettings {
  return config.failover ?? failoverDefaults;
}

export function memberAttributesOf(config: ClusterConfig, id: NodeId): MemberAttributes {
  return config.members?.find((entry) => entry.id === id) ?? memberDefaults;
}

/** A voter that is neither a witness nor never-promote: the only kind of node that keeps leadership. */
export function mayLead(config: ClusterConfig, id: NodeId): boolean {
  const attributes = memberAttributesOf(config, id);
  return isVoter(config, id) && !attributes.witness && !attributes.neverPromote;
}

export function hasEligibleVoter(config: ClusterConfig): boolean {
  return config.voters.some((id) => mayLead(config, id));
}

/**
 * Whether the cluster replaces a lost leader by itself: mode `auto` and not paused. Otherwise a
 * follower that loses its leader reports it and waits (for an operator, or the approve timeout).
 */
export function failoverIsAutomatic(config: ClusterConfig): boolean {
  const { mode, paused } = failoverSettingsOf(config);
  return mode === "auto" && !paused;
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
  const next = normalizeClusterConfig({
    voters,
    learners,
    addresses,
    ...(config.failover === undefined ? {} : { failover: config.failover }),
    members: (config.members ?? []).filter((entry) => entry.id !== node || kind !== "remove"),
  });
  if (!hasEligibleVoter(next)) return "NO_ELIGIBLE_VOTER";
  assertValidClusterConfig(next);
  const added = voters.filter((id) => !config.voters.includes(id)).length;
  const removed = config.voters.filter((id) => !voters.includes(id)).length;
  assert(added + removed <= 1, "a single-server change changes at most one voter");
  return next;
}

/** The configuration after a failover change, or why the change is refused. Changes no voter or learner. */
export function applyFailoverChange(
  config: ClusterConfig,
  change: FailoverChange,
): ClusterConfig | FailoverChangeRejectionCode {
  let next: ClusterConfig;
  if (change.kind === "settings") {
    const settings = overlay(failoverSettingsOf(config), change.settings ?? {});
    if (failoverSettingsProblem(settings) !== null) return "INVALID_FAILOVER_SETTING";
    next = normalizeClusterConfig({ ...config, failover: settings });
  } else if (change.kind === "member") {
    if (!isMember(config, change.node)) return "NODE_NOT_MEMBER";
    const attributes = overlay(memberAttributesOf(config, change.node), change.attributes ?? {});
    if (memberAttributesProblem(attributes) !== null) return "INVALID_FAILOVER_SETTING";
    const others = (config.members ?? []).filter((entry) => entry.id !== change.node);
    next = normalizeClusterConfig({ ...config, members: [...others, { ...attributes, id: change.node }] });
  } else {
    return "INVALID_FAILOVER_SETTING";
  }
  if (!hasEligibleVoter(next)) return "NO_ELIGIBLE_VOTER";
  assertValidClusterConfig(next);
  assert(
    next.voters.join() === config.voters.join() && next.learners.join() === config.learners.join(),
    "a failover change changes no member",
  );
  return next;
}
