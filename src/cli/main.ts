/**
 * The `baton` command: dispatches to subcommands. Exit codes: 0 success, 1 runtime failure,
 * 2 usage error (bad flags, bad configuration).
 */
import { isBatonError } from "../lib/errors.ts";
import { execWithNodeFlags } from "./node-flags.ts";

const usage = `Usage: baton <command> [options]

Commands:
  start    run one node of a cluster          (baton start --help)
  dev      run a local 3-node cluster         (baton dev --help)
  status   show the cluster's nodes           (baton status --help)
  shell    interactive SQL prompt             (baton shell --help)
  member   list, add, remove, promote, demote members (baton member --help)
  switchover  hand leadership over, now or at a time (baton switchover --help)
  failover failover modes, pause, promotion and approval (baton failover --help)
  history  role changes, elections and operator actions (baton history --help)
  orphans  writes lost in a failover, kept for review (baton orphans --help)
  recover  forced recovery after losing a majority (baton recover --help)
`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  start: async () => (await import("./start-command.ts")).startCommand,
  dev: async () => (await import("./dev-command.ts")).devCommand,
  status: async () => (await import("./status-command.ts")).statusCommand,
  shell: async () => (await import("./shell-command.ts")).shellCommand,
  member: async () => (await import("./member-command.ts")).memberCommand,
  switchover: async () => (await import("./switchover-command.ts")).switchoverCommand,
  failover: async () => (await import("./failover-command.ts")).failoverCommand,
  history: async () => (await import("./history-command.ts")).historyCommand,
  orphans: async () => (await import("./orphans-command.ts")).orphansCommand,
  recover: async () => (await import("./recover-command.ts")).recoverCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage);
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  if (load === undefined) {
    process.stderr.write(`baton: unknown command ${JSON.stringify(name)}\n\n${usage}`);
    return 2;
  }
  // A node process gets Node's flags for a long-running node first (node-flags.ts); `--help` needs none.
  if (name === "start" && !rest.includes("--help") && !rest.includes("-h")) execWithNodeFlags();
  try {
    return await (await load())(rest);
  } catch (error) {
    if (isBatonError(error, "BAD_CONFIG")) {
      process.stderr.write(`baton ${name}: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(
      `baton ${name}: ${isBatonError(error) ? `${error.code}: ${error.message}` : String((error as Error)?.stack ?? error)}\n`,
    );
    return 1;
  }
}
