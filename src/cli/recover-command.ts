/**
 * `baton recover --force [--yes] <the node's start flags>`: forced recovery of a stopped node after
 * the loss of a majority (see `recovery.ts`). Prints exactly what may be lost, asks for
 * confirmation (type RECOVER, or pass --yes), then makes this node the only voter of a new cluster
 * incarnation; run `baton start` with the same flags afterwards.
 */
import readline from "node:readline/promises";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { applyRecovery, type LossReport, planRecovery, readRecovery } from "../node/recovery.ts";
import { resolveStartConfig } from "./start-config.ts";

const help = `Usage: baton recover --force [--yes] --id ID --data DIR [--cluster ...] [--cluster-id ...]

Use only when a majority of the voters is gone for good and the node is stopped. The node becomes
the only voter of a new cluster incarnation: entries it holds that were never committed become
committed, writes the lost members committed beyond its log are lost, and old members are refused
if they return. The report below is printed before anything changes.
`;

export async function recoverCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(help);
    return 0;
  }
  const force = argv.includes("--force");
  const yes = argv.includes("--yes");
  const rest = argv.filter((a) => a !== "--force" && a !== "--yes");
  if (!force) throw new BatonError(ErrorCode.BAD_CONFIG, `a forced recovery needs --force\n\n${help}`);
  const config = resolveStartConfig(rest, process.env);
  const baseClusterId = readRecovery(config.dataDirectory)?.baseClusterId ?? config.clusterId;
  const report = planRecovery(
    config.dataDirectory,
    config.id,
    config.cluster.map((m) => m.id),
  );
  process.stdout.write(formatLossReport(report, Date.now()));
  if (!yes && !process.stdin.isTTY) {
    process.stdout.write("nothing changed: confirm in a terminal, or pass --yes\n");
    return 1;
  }
  if (!yes) {
    const prompt = readline.createInterface({ input: process.stdin, output: process.stdout });
    const answer = await prompt.question("Type RECOVER to go ahead: ");
    prompt.close();
    if (answer.trim() !== "RECOVER") {
      process.stdout.write("nothing changed\n");
      return 1;
    }
  }
  const recovery = await applyRecovery(config.dataDirectory, report, baseClusterId, Date.now());
  process.stdout.write(
    `recovered: start the node again with the same flags; it serves cluster incarnation ${recovery.incarnation} alone\n`,
  );
  return 0;
}

export function formatLossReport(report: LossReport, nowMs: number): string {
  const lines = [
    `Forced recovery of ${report.node}: it becomes the only voter of cluster incarnation ${report.incarnation}.`,
    `  its log ends at index ${report.lastIndex} (term ${report.lastTerm}); its state is applied through ${report.appliedIndex}.`,
    report.uncertain === null
      ? "  every entry it holds is applied: none is of uncertain status."
      : `  ${report.uncertain.count} entries (${report.uncertain.from}..${report.uncertain.to}) are not known to be committed; the recovery commits them.`,
    "  writes the missing members committed beyond this node's log are LOST.",
    "  last contact with each missing member:",
    ...report.members.map(
      (m) =>
        `    ${m.id}: ${m.lastContactAtMs === null ? "never recorded" : `${new Date(m.lastContactAtMs).toISOString()} (${Math.round((nowMs - m.lastContactAtMs) / 1000)} s ago)`}`,
    ),
    "  members of the old configuration are refused if they return; add new members to the recovered node.",
  ];
  return `${lines.join("\n")}\n`;
}
