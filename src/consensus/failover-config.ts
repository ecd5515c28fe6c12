/**
 * The failover part of the replicated configuration: the cluster's failover settings and each
 * member's attributes, their defaults, validation, their JSON form inside a configuration entry, and
 * the one-at-a-time changes an operator makes to them.
 *
 * Settings (one set per cluster):
 *  - `mode`: `auto` (a follower that loses its leader campaigns by itself, Raft as usual), `manual`
 *    (leader loss is detected and reported, nobody campaigns by itself, an operator promotes a
 *    node), `approve` (leader loss is reported with a proposed candidate; the operator approves it,
 *    or after `approveTimeoutMs` the `approvePolicy` applies: `promote` the candidate, or
 *    `stay-leaderless`);
 *  - `paused`: a maintenance pause; no automatic failover of any kind while set (no campaign by
 *    timer, no approve timeout, no priority transfer); operator commands and everything else work.
 *
 * Member attributes (per voter or learner): `priority` (0 to `priorityMax`; a leader hands its
 * office to a caught-up voter of higher priority), `zone` (a tag; failover prefers the lost
 * leader's zone), `neverPromote` (votes, never leads), `witness` (votes and keeps the log, never
 * applies it, never serves a client, never leads). A voter that is neither `neverPromote` nor a
 * witness "may lead"; a valid configuration always has one (`NO_ELIGIBLE_VOTER` otherwise), since a
 * cluster without one could never elect a leader that keeps office, hence never change back.
 *
 * Nothing here changes a rule of Raft's safety: settings and attributes decide only whether a node
 * starts an election or a leadership transfer by itself; votes and commits follow Raft regardless.
 *
 * Encoding: a configuration whose settings are all defaults and whose members all have default
 * attributes is written as version 1 (`cluster-config.ts`), byte for byte as before this part
 * existed; any other is version 2, which adds `"failover":{…}` (all four settings) and
 * `"members":[…]` (one object per member with a non-default attribute, ordered by id, holding `id`
 * and only its non-default attributes, keys in the order `priority`, `zone`, `neverPromote`,
 * `witness`). A version 1 entry decodes to the defaults.
 */
import type { NodeId } from "../types/ids.ts";

export type FailoverMode = "auto" | "manual" | "approve";
export const failoverModes: readonly FailoverMode[] = ["auto", "manual", "approve"];

/** What the candidate of a pending failover does when the approval does not come in time. */
export type ApprovePolicy = "promote" | "stay-leaderless";
export const approvePolicies: readonly ApprovePolicy[] = ["promote", "stay-leaderless"];

export type FailoverSettings = {
  readonly mode: FailoverMode;
  readonly paused: boolean;
  /** How long a pending failover waits for approval (mode `approve`), from the moment the leader was deemed lost. */
  readonly approveTimeoutMs: number;
  readonly approvePolicy: ApprovePolicy;
};

export const failoverDefaults: FailoverSettings = {
  mode: "auto",
  paused: false,
  approveTimeoutMs: 30_000,
  // An operator who asks to approve failovers would not expect one to happen unasked.
  approvePolicy: "stay-leaderless",
};

/** The longest approval wait a configuration may set: a day; beyond it "stay leaderless" is the honest setting. */
export const approveTimeoutMsMax = 86_400_000;
/** The highest member priority. */
export const priorityMax = 100;

export type MemberAttributes = {
  readonly priority: number;
  readonly zone: string | null;
  readonly neverPromote: boolean;
  readonly witness: boolean;
};

export const memberDefaults: MemberAttributes = {
  priority: 0,
  zone: null,
  neverPromote: false,
  witness: false,
};

/** One member's attributes as the configuration holds them. */
export type MemberAttributesEntry = MemberAttributes & { readonly id: NodeId };

/** One change to the failover part of the configuration: some settings, or some attributes of one member. */
export type FailoverChange =
  | { readonly kind: "settings"; readonly settings: Partial<FailoverSettings> }
  | { readonly kind: "member"; readonly node: NodeId; readonly attributes: Partial<MemberAttributes> };

/**
 * Why the leader refused a failover change for a reason of the configuration. Permanent codes.
 * (The refusals any proposal can meet arrive in `proposals`, as for writes.)
 */
export type FailoverChangeRejectionCode =
  /** The previous configuration entry (membership or failover) is not committed yet: one change at a time. */
  | "CONFIG_CHANGE_PENDING"
  /** A member change names a node that is neither a voter nor a learner. */
  | "NODE_NOT_MEMBER"
  /** A value out of its range or of the wrong type (the message of the node layer's own check may say more). */
  | "INVALID_FAILOVER_SETTING"
  /** The change would leave no voter that may lead. */
  | "NO_ELIGIBLE_VOTER";

const zonePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Null for valid settings, otherwise what is wrong with them. */
export function failoverSettingsProblem(settings: FailoverSettings): string | null {
  const { mode, paused, approveTimeoutMs, approvePolicy } = settings;
  if (!failoverModes.includes(mode)) return `unknown failover mode ${JSON.stringify(mode)}`;
  if (typeof paused !== "boolean") return "paused must be a boolean";
  if (
    !Number.isSafeInteger(approveTimeoutMs) ||
    approveTimeoutMs < 1 ||
    approveTimeoutMs > approveTimeoutMsMax
  )
    return `approveTimeoutMs must be an integer in 1..${approveTimeoutMsMax}`;
  if (!approvePolicies.includes(approvePolicy))
    return `unknown approve policy ${JSON.stringify(approvePolicy)}`;
  return null;
}

/** Null for valid attributes, otherwise what is wrong with them. */
export function memberAttributesProblem(attributes: MemberAttributes): string | null {
  const { priority, zone, neverPromote, witness } = attributes;
  if (!Number.isSafeInteger(priority) || priority < 0 || priority > priorityMax)
    return `priority must be an integer in 0..${priorityMax}`;
  if (zone !== null && (typeof zone !== "string" || !zonePattern.test(zone)))
    return `bad zone ${JSON.stringify(zone)}`;
  if (typeof neverPromote !== "boolean" || typeof witness !== "boolean")
    return "neverPromote and witness must be booleans";
  return null;
}

export function sameFailoverSettings(a: FailoverSettings, b: FailoverSettings): boolean {
  return (
    a.mode === b.mode &&
    a.paused === b.paused &&
    a.approveTimeoutMs === b.approveTimeoutMs &&
    a.approvePolicy === b.approvePolicy
  );
}

export function isDefaultMember(attributes: MemberAttributes): boolean {
  return (
    attributes.priority === memberDefaults.priority &&
    attributes.zone === memberDefaults.zone &&
    attributes.neverPromote === memberDefaults.neverPromote &&
    attributes.witness === memberDefaults.witness
  );
}

/** The JSON value of one member's attributes: `id`, then only its non-default attributes, in a fixed order. */
export function memberJson(entry: MemberAttributesEntry): Record<string, unknown> {
  const value: Record<string, unknown> = { id: entry.id };
  if (entry.priority !== memberDefaults.priority) value.priority = entry.priority;
  if (entry.zone !== memberDefaults.zone) value.zone = entry.zone;
  if (entry.neverPromote !== memberDefaults.neverPromote) value.neverPromote = entry.neverPromote;
  if (entry.witness !== memberDefaults.witness) value.witness = entry.witness;
  return value;
}

/** Reads one member object of a version 2 entry (missing attributes take their defaults); unknown keys are caught by the canonical check. */
export function parseMemberJson(value: unknown): MemberAttributesEntry | { readonly problem: string } {
  if (typeof value !== "object" || value === null) return { problem: "a member is not an object" };
  const { id, priority, zone, neverPromote, witness } = value as Record<string, unknown>;
  if (typeof id !== "string") return { problem: "a member has no id" };
  const entry = {
    id: id as NodeId,
    priority: priority ?? memberDefaults.priority,
    zone: zone ?? memberDefaults.zone,
    neverPromote: neverPromote ?? memberDefaults.neverPromote,
    witness: witness ?? memberDefaults.witness,
  } as MemberAttributesEntry;
  const problem = memberAttributesProblem(entry);
  return problem === null ? entry : { problem };
}

/** Reads the settings object of a version 2 entry. */
export function parseFailoverJson(value: unknown): FailoverSettings | { readonly problem: string } {
  if (typeof value !== "object" || value === null) return { problem: "failover is not an object" };
  const { mode, paused, approveTimeoutMs, approvePolicy } = value as Record<string, unknown>;
  const settings = { mode, paused, approveTimeoutMs, approvePolicy } as FailoverSettings;
  const problem = failoverSettingsProblem(settings);
  return problem === null ? settings : { problem };
}

/** `base` with the defined fields of `partial` laid over it (undefined fields keep the base's value). */
export function overlay<T extends object>(base: T, partial: Partial<T>): T {
  const result: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(partial)) if (value !== undefined) result[key] = value;
  return result as T;
}
