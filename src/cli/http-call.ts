/**
 * One request from an operator command to a node's HTTP API, bounded in time. An error answer
 * becomes a `BatonError` with the node's code and message, which the CLI prints.
 */
import { BatonError } from "../lib/errors.ts";

export async function callNode(
  url: string,
  path: string,
  options: { method?: string; body?: unknown; timeoutMs: number },
): Promise<unknown> {
  const base = /^https?:\/\//.test(url) ? url : `http://${url}`;
  const { method = "GET", body, timeoutMs } = options;
  const response = await fetch(`${base.replace(/\/+$/, "")}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
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
