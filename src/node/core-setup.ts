/**
 * What the replica loop builds its consensus core from: the node's tuning of the core, and the
 * configuration a recovered compaction point names.
 */
import type { ClusterConfig } from "../consensus/index.ts";
import { parseClusterConfig, type RaftCore } from "../consensus/index.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import type { CompactionPoint } from "../wal/log-store.ts";
import { commitNewsDelayMsOf, type NodeConfig } from "./node-config.ts";

export function coreTuning(config: NodeConfig): Partial<ConstructorParameters<typeof RaftCore>[0]> {
  const tuning: Record<string, unknown> = {};
  const keys = [
    "electionJitter",
    "preVote",
    "checkQuorum",
    "appendEntriesInflightMax",
    "appendEntriesEagerInflightMax",
    "appendEntriesBatchEntriesMax",
    "appendEntriesBatchBytesMax",
  ] as const;
  for (const key of keys) if (config[key] !== undefined) tuning[key] = config[key];
  tuning.deferCommitNews = commitNewsDelayMsOf(config) > 0;
  if (config.unsafeCoreBugs !== undefined) tuning.unsafeTestBugs = config.unsafeCoreBugs;
  return tuning;
}

/** The configuration a recovered compaction point names; a damaged one refuses the start. */
export function recoveredConfig(point: CompactionPoint): { snapshotConfig?: ClusterConfig } {
  if (point.config === undefined) return {};
  const parsed = parseClusterConfig(new TextEncoder().encode(point.config));
  if ("problem" in parsed)
    throw new BatonError(
      ErrorCode.WAL_CORRUPT,
      `the configuration at the log's compaction point is unreadable: ${parsed.problem}`,
      { index: point.index },
    );
  return { snapshotConfig: parsed };
}
