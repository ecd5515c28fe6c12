/**
 * Structured logging for the node process, on pino (fast, levelled, child loggers, redaction).
 *
 * JSON lines by default when stdout is not a TTY (for log shippers), readable one-line records
 * on a TTY. The readable form is a small formatter of our own fields rather than pino-pretty,
 * which would pull a dozen packages for a feature of twenty lines.
 */
import { Writable } from "node:stream";
import pino from "pino";

export type LogFormat = "json" | "pretty";
export type LogLevel = "debug" | "info" | "warn" | "error";
export type Logger = pino.Logger;

const levelNames: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO ",
  40: "WARN ",
  50: "ERROR",
  60: "FATAL",
};

/** Formats one pino JSON record as `HH:MM:SS.mmm LEVEL [node] event key=value ...`. */
export function formatReadable(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { level, time, msg, node, pid: _pid, hostname: _hostname, ...rest } = record;
  const clock = typeof time === "number" ? new Date(time).toISOString().slice(11, 23) : "";
  const fields = Object.entries(rest)
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" ");
  return `${clock} ${levelNames[level as number] ?? String(level)} [${String(node ?? "-")}] ${String(msg ?? "")}${fields ? ` ${fields}` : ""}\n`;
}

export function createLogger(options: {
  level: LogLevel;
  format: LogFormat;
  node: string;
  destination?: NodeJS.WritableStream;
}): Logger {
  const output = options.destination ?? process.stdout;
  const base = { node: options.node };
  if (options.format === "json")
    return pino({ level: options.level, base }, output as pino.DestinationStream);
  let pending = "";
  const readable = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line) output.write(formatReadable(line));
      callback();
    },
  });
  return pino({ level: options.level, base }, readable);
}
