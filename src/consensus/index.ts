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
  copyClusterConfig,
  decodeClusterConfig,
  encodeClusterConfig,
  isVoter,
  learnersMax,
  memberAddressProblem,
  membershipChangeKinds,
  parseClusterConfig,
  votersMax,
} from "./cluster-config.ts";
export type { Durability, RaftConfig, ResolvedConfig, UnsafeTestBugs } from "./config.ts";
export { configDefaults, durabilityLevels, quorumSize, resolveConfig } from "./config.ts";
export type { InitialState } from "./core-state.ts";
export type {
  Acknowledgement,
  Effects,
  MembershipRejected,
  NotConfirmed,
  OutboundMessage,
  ProposalOutcome,
  ProposalRejectionCode,
  ReadReady,
  ReadRejected,
  ReadRejectionCode,
  RoleChange,
  SnapshotNeeded,
} from "./effects.ts";
export type { CoreEvent, CoreEventType, Role, StepDownReason } from "./events.ts";
export type { ChangeMembershipInput, Input, ProposalId, ReadRequestId } from "./inputs.ts";
export type * from "./messages.ts";
export { messageTypes, sendableBeforePersist } from "./messages.ts";
export type { CoreStatus, CoreSummary, MemberStatus } from "./raft-core.ts";
export { RaftCore } from "./raft-core.ts";
