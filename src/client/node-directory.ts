/**
 * What the client knows about the cluster: the nodes' base URLs and which one it believes leads.
 *
 * Invariants: every URL is normalised (scheme, host, port, optional path prefix, no trailing slash) and
 * appears once; the believed leader, when set, is one of the known URLs; the node list never grows
 * beyond `nodesKnownMax`, so a misbehaving server cannot make the client's memory grow. The belief
 * is only a routing hint: a wrong one costs a redirect or a retry, never correctness.
 */

import type { MemberStatus, NodeAddress } from "../api/api-types.ts";
import { assert } from "../lib/assert.ts";

/** The most node URLs remembered (seeds plus those learned from status and redirects). */
export const nodesKnownMax = 64;

/**
 * Turns `http://host:port`, `https://host/prefix/` or a bare `host:port` (as nodes advertise
 * themselves) into a base URL without a trailing slash. Returns `undefined` for anything else.
 */
export function normalizeNodeUrl(text: string, schemeDefault = "http:"): string | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `${schemeDefault}//${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") return undefined;
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.protocol}//${url.host}${path}`;
}

export class NodeDirectory {
  readonly #urls: string[] = [];
  readonly #urlById = new Map<string, string>();
  #leaderUrl: string | undefined;
  #leaderLearnedAtMs = 0;
  #nextIndex = 0;

  constructor(seedUrls: readonly string[]) {
    assert(seedUrls.length > 0, "a directory needs at least one node");
    for (const url of seedUrls) this.#add(url);
    assert(this.#urls.length > 0, "no seed URL was kept");
  }

  get urls(): readonly string[] {
    return this.#urls;
  }

  get leaderUrl(): string | undefined {
    return this.#leaderUrl;
  }

  /** How long ago the leader belief was last confirmed; `Infinity` when there is none. */
  leaderAgeMs(nowMs: number): number {
    return this.#leaderUrl === undefined ? Number.POSITIVE_INFINITY : nowMs - this.#leaderLearnedAtMs;
  }

  /** The next node in round-robin order, for reads any node may serve and for probing. */
  nextUrl(): string {
    const url = this.#urls[this.#nextIndex % this.#urls.length];
    assert(url !== undefined, "round robin ran off the node list");
    this.#nextIndex = (this.#nextIndex + 1) % this.#urls.length;
    return url;
  }

  /** Makes `url` the next node `nextUrl` returns no more, so a failing node is not retried first. */
  skipPast(url: string): void {
    const index = this.#urls.indexOf(url);
    if (index >= 0 && this.#urls[this.#nextIndex % this.#urls.length] === url) {
      this.#nextIndex = (index + 1) % this.#urls.length;
    }
  }

  /** Records that node `id` answers at `url` (from its own status). */
  learnIdentity(id: string, url: string): void {
    const kept = this.#add(url);
    if (kept !== undefined) this.#urlById.set(id, kept);
  }

  /**
   * Adopts a leader as advertised by the node at `fromUrl`. The address may lack a scheme, in which
   * case the advertising node's scheme is used; if it is unusable, the id is looked up instead.
   * Returns the leader's URL, or `undefined` if it could not be resolved.
   */
  learnLeader(address: NodeAddress, fromUrl: string, nowMs: number): string | undefined {
    const scheme = new URL(fromUrl).protocol;
    const advertised = typeof address.http === "string" ? normalizeNodeUrl(address.http, scheme) : undefined;
    const url = advertised !== undefined ? this.#add(advertised) : this.#urlById.get(address.id);
    if (url === undefined) return undefined;
    if (typeof address.id === "string") this.#urlById.set(address.id, url);
    this.#leaderUrl = url;
    this.#leaderLearnedAtMs = nowMs;
    assert(this.#urls.includes(url), "the leader must be a known node");
    return url;
  }

  /** Adds the members a status answer lists, so nodes missing from the seed list become reachable. */
  learnMembers(members: readonly MemberStatus[], fromUrl: string): void {
    const scheme = new URL(fromUrl).protocol;
    for (const member of members.slice(0, nodesKnownMax)) {
      if (typeof member.http !== "string" || typeof member.id !== "string") continue;
      const url = normalizeNodeUrl(member.http, scheme);
      if (url !== undefined) this.learnIdentity(member.id, url);
    }
  }

  /** Drops the leader belief; with `url`, only if that node is the one believed to lead. */
  forgetLeader(url?: string): void {
    if (url === undefined || this.#leaderUrl === url) this.#leaderUrl = undefined;
  }

  /** Adds a normalised URL if there is room; returns it if it is known afterwards. */
  #add(url: string): string | undefined {
    if (this.#urls.includes(url)) return url;
    if (this.#urls.length >= nodesKnownMax) return undefined;
    this.#urls.push(url);
    return url;
  }
}
