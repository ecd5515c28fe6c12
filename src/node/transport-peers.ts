/**
 * Keeps the transport's peers and the HTTP directory in step with the configuration the core uses
 * now: every member is a peer (dialled at its recorded address, or accepted when it dials in); a
 * node that left is dropped, unless it was given on the command line (a start peer).
 */
import type { ClusterConfig } from "../consensus/index.ts";
import type { Transport } from "../transport/transport.ts";
import type { NodeId } from "../types/ids.ts";
import type { PeerDirectory } from "./peer-directory.ts";

export class TransportPeers {
  readonly #self: NodeId;
  readonly #directory: PeerDirectory;
  readonly #startPeers: ReadonlySet<NodeId>;
  /** The configuration the transport's peers were last made to match. */
  #synced: ClusterConfig | null = null;
  /** Peers the transport knows; the start peers are never dropped. */
  #known: Set<NodeId>;

  constructor(self: NodeId, directory: PeerDirectory) {
    this.#self = self;
    this.#directory = directory;
    this.#startPeers = new Set(directory.knownIds());
    this.#known = new Set(this.#startPeers);
  }

  /** Makes `transport`'s peers those of `config` (nothing when it is the one last synced). */
  sync(transport: Transport, config: ClusterConfig): void {
    if (config === this.#synced) return;
    this.#synced = config;
    const wanted = new Set<NodeId>([...config.voters, ...config.learners].filter((id) => id !== this.#self));
    for (const id of wanted) {
      const address = config.addresses?.[id];
      if (address !== undefined) {
        transport.addPeer(id, address.raft);
        this.#directory.learn(id, address.http);
      } else if (!this.#known.has(id)) transport.addPeer(id, null);
    }
    for (const id of this.#known) if (!wanted.has(id) && !this.#startPeers.has(id)) transport.removePeer(id);
    this.#known = new Set([...wanted, ...this.#startPeers]);
  }
}
