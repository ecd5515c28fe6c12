/**
 * What travels in a transport message body between nodes: a one-byte class, then the content.
 *
 * - `consensus`: a consensus message in the binary codec of `message-codec.ts`.
 * - `nodeInfo`: JSON `{http}` — each node tells its peers where its HTTP API listens, so a
 *   follower can forward writes to the leader and `/v1/status` can name the leader's address
 *   without the operator listing every HTTP address in `--cluster`.
 */
import type { Message } from "../consensus/messages.ts";
import { BatonError, ErrorCode } from "../lib/errors.ts";
import { decodeMessage, encodeMessage } from "./message-codec.ts";

const consensusClass = 1;
const nodeInfoClass = 2;
const nodeInfoBytesMax = 1024;

export type NodeInfo = { readonly http: string };
export type PeerBody =
  | { readonly type: "consensus"; readonly message: Message }
  | { readonly type: "nodeInfo"; readonly info: NodeInfo };

export function encodeConsensus(message: Message): Uint8Array {
  const body = encodeMessage(message);
  const framed = new Uint8Array(body.byteLength + 1);
  framed[0] = consensusClass;
  framed.set(body, 1);
  return framed;
}

export function encodeNodeInfo(info: NodeInfo): Uint8Array {
  const json = Buffer.from(JSON.stringify({ http: info.http }));
  const framed = new Uint8Array(json.byteLength + 1);
  framed[0] = nodeInfoClass;
  framed.set(json, 1);
  return framed;
}

export function decodePeerBody(body: Uint8Array): PeerBody {
  const content = body.subarray(1);
  if (body[0] === consensusClass) return { type: "consensus", message: decodeMessage(content) };
  if (body[0] === nodeInfoClass && content.byteLength <= nodeInfoBytesMax) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(content).toString("utf8"));
    } catch {
      throw new BatonError(ErrorCode.BAD_MESSAGE, "node info is not JSON");
    }
    const http = (parsed as { http?: unknown })?.http;
    if (typeof http !== "string" || http.length > 300)
      throw new BatonError(ErrorCode.BAD_MESSAGE, "node info without an http address");
    return { type: "nodeInfo", info: { http } };
  }
  throw new BatonError(ErrorCode.BAD_MESSAGE, `unknown peer body class ${body[0]}`);
}
