/**
 * Public surface of the consensus core. The node process imports from here only.
 */
export type {
  ClusterConfig,
  MemberAddress,
  MembershipChange,
  MembershipChangeKind,
  MembershipRejectionCode,
} from "./cluster-config.ts";
export {
  clusterConfigProblem,
  clusterConfigText,
  decodeClusterConfig,
  encodeClusterConfig,
  failoverIsAutomatic,
  failoverSettingsOf,
  isVoter,
  learnersMax,
  mayLead,
  memberAddressProblem,
  memberAttributesOf,
  membershipChangeKinds,
  normalizeClusterConfig,
  parseClusterConfig,
  votersMax,
} from "./cluster-config.ts";
export type { Durability, RaftConfig, ResolvedConfig, UnsafeTestBugs } from "./config.ts";
export { configDefaults, durabilityLevels, quorumSize, resolveConfig } from "./config.ts";
export type { InitialState } from "./core-state.ts";
export type { CoreStatus, CoreSummary, MemberStatus } from "./core-status.ts";
export type {
  Acknowledgement,
  Effects,
  FailoverChangeRejected,
  MembershipRejected,
  NotConfirmed,
  OutboundMessage,
  PromotionOutcome,
  ProposalOutcome,
  ProposalRejectionCode,
  ReadReady,
  ReadRejected,
  ReadRejectionCode,
  RoleChange,
  SnapshotNeeded,
} from "./effects.ts";
export type { CoreEvent, CoreEventType, Role, StepDownReason } from "./events.ts";
export type { FailoverStatus } from "./failover.ts";
export type {
  ApprovePolicy,
  FailoverChange,
  FailoverChangeRejectionCode,
  FailoverMode,
  FailoverSettings,
  MemberAttributes,
  MemberAttributesEntry,
} from "./failover-config.ts";
export {
  approvePolicies,
  approveTimeoutMsMax,
  failoverDefaults,
  failoverModes,
  memberDefaults,
  priorityMax,
} from "./failover-config.ts";
export type { FailoverProposal, PromoteRefusal, PromoteRefusalCode } from "./failover-view.ts";
export type {
  ChangeFailoverInput,
  ChangeMembershipInput,
  Input,
  PromoteLeaderInput,
  PromoteRequestId,
  ProposalId,
  ReadRequestId,
} from "./inputs.ts";
export type * from "./messages.ts";
export { messageTypes, sendableBeforePersist } from "./messages.ts";
export { RaftCore } from "./raft-core.ts";
