/**
 * `DATA/join.json`: what a node that joined a running cluster (`baton start --join`, see
 * `src/cli/join.ts`) learned when it joined: the cluster id, the configuration with every member's
 * address, what it joined as and whether it has become that. Written durably before the node uses it.
 */
import fs from "node:fs";
import path from "node:path";
import { type ClusterConfig, clusterConfigText, parseClusterConfig } from "../consensus/index.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { writeFileDurably } from "./write-file-durably.ts";

export const joinFileName = "join.json";

export type JoinState = {
  readonly clusterId: string;
  readonly config: ClusterConfig;
  readonly joinAs: "voter" | "learner" | "witness";
  /** Whether the node became what it joined as (a learner at once; a voter once promoted). */
  readonly done: boolean;
};

/** A configuration as JSON (a join answer or `join.json`), or null when it is not a valid one. */
export function parseConfigJson(value: unknown): ClusterConfig | null {
  const parsed = parseClusterConfig(new TextEncoder().encode(JSON.stringify(value ?? null)));
  return "problem" in parsed ? null : parsed;
}

function joinFile(dataDirectory: string): string {
  return path.join(dataDirectory, joinFileName);
}

export function readJoinState(dataDirectory: string): JoinState | null {
  const file = joinFile(dataDirectory);
  if (!fs.existsSync(file)) return null;
  let parsed: Partial<JoinState> & { config?: unknown };
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8")) as typeof parsed;
  } catch (error) {
    throw new BatonError(ErrorCode.STORE_CORRUPT, `${file} is not valid JSON: ${(error as Error).message}`);
  }
  const config = parseConfigJson(parsed.config);
  if (typeof parsed.clusterId !== "string" || config === null)
    throw new BatonError(ErrorCode.STORE_CORRUPT, `${file} has no cluster id or a bad configuration`);
  return {
    clusterId: parsed.clusterId,
    config,
    joinAs: parsed.joinAs === "learner" || parsed.joinAs === "witness" ? parsed.joinAs : "voter",
    done: parsed.done === true,
  };
}

export function writeJoinState(dataDirectory: string, state: JoinState): void {
  fs.mkdirSync(dataDirectory, { recursive: true });
  const config = JSON.parse(clusterConfigText(state.config)) as unknown;
  writeFileDurably(joinFile(dataDirectory), JSON.stringify({ ...state, config }));
}
