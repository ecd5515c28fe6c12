/**
 * `baton shell [--url URL]`: an interactive SQL prompt that follows the leader (through the client
 * library). A statement ends with `;`. Reads run as linearizable queries; a statement the server
 * refuses as a query (NOT_A_QUERY) runs as a write. Dot commands: .tables .schema .status .help .quit
 */
import readline from "node:readline";
import type { Client } from "../client/client.ts";
import { connect } from "../client/index.ts";
import { parseFlags } from "./flags.ts";
import { formatStatusTable } from "./status-command.ts";

const help = `Usage: baton shell [--url http://127.0.0.1:4001[,http://...]]\n\nEnd statements with ';'. Commands: .tables .schema .status .help .quit\n`;

function printRows(columns: readonly string[], rows: readonly (readonly unknown[])[]): void {
  const cells = [
    columns.map(String),
    ...rows.map((r) =>
      r.map((v) => (v === null ? "NULL" : typeof v === "object" ? JSON.stringify(v) : String(v))),
    ),
  ];
  const widths = columns.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  for (const [n, row] of cells.entries()) {
    process.stdout.write(`${row.map((c, i) => c.padEnd(widths[i]!)).join(" | ")}\n`);
    if (n === 0) process.stdout.write(`${widths.map((w) => "-".repeat(w)).join("-+-")}\n`);
  }
  process.stdout.write(`(${rows.length} row${rows.length === 1 ? "" : "s"})\n`);
}

async function runSql(client: Client, sql: string): Promise<void> {
  try {
    const result = await client.queryRaw(sql);
    for (const r of result.results) printRows(r.columns, r.rows);
  } catch (error) {
    if ((error as { code?: string }).code !== "NOT_A_QUERY") throw error;
    const written = await client.execute(sql);
    for (const r of written.results) {
      if (r.columns !== undefined) printRows(r.columns, r.rows ?? []);
      else
        process.stdout.write(
          `ok: ${r.rowsAffected} row(s) affected, last insert rowid ${r.lastInsertRowid}\n`,
        );
    }
    process.stdout.write(`position ${written.position.index}/${written.position.term}\n`);
  }
}

async function runDot(client: Client, command: string): Promise<boolean> {
  const [name] = command.split(/\s+/);
  if (name === ".quit" || name === ".exit") return false;
  if (name === ".help") process.stdout.write(help);
  else if (name === ".tables")
    await runSql(
      client,
      "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_baton_%' ORDER BY name",
    );
  else if (name === ".schema")
    await runSql(
      client,
      "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE '_baton_%' ORDER BY name",
    );
  else if (name === ".status") {
    const status = await client.status();
    process.stdout.write(
      formatStatusTable(
        [{ id: status.id, url: client.leader ?? "", status, error: null }],
        status.role === "leader" ? status : null,
      ),
    );
  } else process.stdout.write(`unknown command ${name}; try .help\n`);
  return true;
}

export async function shellCommand(argv: string[]): Promise<number> {
  const values = parseFlags(argv, { url: { type: "string" }, help: { type: "boolean" } }) as {
    url?: string;
    help?: boolean;
  };
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  const client = connect({ nodes: (values.url ?? "http://127.0.0.1:4001").split(",") });
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, prompt: "baton> " });
  let buffer = "";
  // Input may end (piped scripts) while a statement is still running: never prompt after that.
  let inputClosed = false;
  rl.once("close", () => {
    inputClosed = true;
  });
  rl.prompt();
  for await (const line of rl) {
    const trimmed = line.trim();
    try {
      if (buffer === "" && trimmed.startsWith(".")) {
        if (!(await runDot(client, trimmed))) break;
      } else if (trimmed !== "") {
        buffer += `${line}\n`;
        if (trimmed.endsWith(";")) {
          const sql = buffer.trim().replace(/;\s*$/, "");
          buffer = "";
          await runSql(client, sql);
        }
      }
    } catch (error) {
      buffer = "";
      const e = error as { code?: string; message?: string };
      process.stdout.write(`error ${e.code ?? ""}: ${e.message ?? String(error)}\n`);
    }
    if (!inputClosed) {
      rl.setPrompt(buffer === "" ? "baton> " : "   ...> ");
      rl.prompt();
    }
  }
  rl.close();
  await client.close();
  return 0;
}
