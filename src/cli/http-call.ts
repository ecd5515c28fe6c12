/**
 * One request from an operator command to a node's HTTP API, bounded in time. An error answer
 * becomes a `BatonError` with the node's code and message, which the CLI prints.
 */
import os from "node:os";
import { BatonError } from "../lib/errors.ts";

/** Who runs the command, as the history records them: `BATON_ACTOR`, else the login name. */
export function operatorName(): string {
  let name = process.env.BATON_ACTOR ?? "";
  if (name === "") {
    try {
      name = os.userInfo().username;
    } catch {
      name = "operator";
    }
  }
  const cleaned = name.replace(/[^\w.@-]/g, "_").slice(0, 64);
  return cleaned === "" ? "operator" : cleaned;
}

export async function callNode(
  url: string,
  path: string,
  options: { method?: string; body?: unknown; timeoutMs: number },
): Promise<unknown> {
  const base = /^https?:\/\//.test(url) ? url : `http://${url}`;
  const { method = "GET", body, timeoutMs } = options;
  const headers: Record<string, string> = { "x-baton-actor": operatorName() };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${base.replace(/\/+$/, "")}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const parsed = (await response.json()) as { error?: { code: string; message: string; details?: object } };
  if (!response.ok) {
    const error = parsed.error;
    throw new BatonError(
      (error?.code ?? "INTERNAL") as never,
      error?.message ?? `HTTP ${response.status}`,
      (error?.details ?? {}) as never,
    );
  }
  return parsed;
}
