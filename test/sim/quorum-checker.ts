/**
 * The commit oracle: what a leader counts toward commit must really be durable where it counted it.
 *
 * The simulator sees every machine's disk, so it can check the quorum rule itself rather than the
 * leader's bookkeeping of it: when a leader's commit index reaches C, the entry at C must be held
 * durably (in the log on disk, behind the disk's compaction point, or under a complete snapshot
 * file) by a majority of the voters of the configuration the leader uses at that moment (the
 * latest in its log, dissertation §4.1). Learners do not count, and neither does anything held
 * only in memory. When a leader acknowledges a write at `all`, every voter of its configuration
 * must hold it. (A `majority` acknowledgement is a commit, checked when the leader committed it.)
 *
 * A wiped disk: Raft assumes a disk keeps what it acknowledged. When the operator wipes a dead
 * machine, what its disk held stays counted for that node (its "ghost"), because a leader may
 * legitimately still count acknowledgements the node sent before it died. What the node holds
 * after its rejoin counts too. A leader that counts a rejoined node's stale progress for entries
 * the node lost is not caught here when the ghost held them, but by what it leads to: an
 * amnesiac vote, a committed entry a later leader lacks (`checkers.ts`).
 */
import { quorumSize } from "../../src/consensus/config.ts";
import { SimViolation } from "./checkers.ts";

/** What one machine holds durably: its log on disk and its snapshot files. */
export type DurableImage = {
  /** The log on disk after the compaction point, contiguous and in index order. */
  readonly entries: readonly { readonly index: number; readonly term: number }[];
  readonly compactedThrough: number;
  /** The index of the latest complete snapshot file (0 without one); read only when needed. */
  readonly snapshotIndex: () => number;
};

/** Whether `image` holds the entry (index, term) durably. */
export function holdsDurably(image: DurableImage, index: number, term: number): boolean {
  if (index <= image.compactedThrough) return true;
  const first = image.entries[0];
  const entry = first === undefined ? undefined : image.entries[index - first.index];
  if (entry !== undefined && entry.index === index && entry.term === term) return true;
  return index <= image.snapshotIndex();
}

export class DurableQuorumChecker {
  private readonly imageOf: (id: string) => DurableImage | null;
  /** What wiped disks held when they were wiped, per node. */
  private readonly ghosts = new Map<string, DurableImage[]>();

  constructor(imageOf: (id: string) => DurableImage | null) {
    this.imageOf = imageOf;
  }

  /** A node's disk is about to be wiped: keep what it held. */
  rememberWiped(id: string, image: DurableImage): void {
    const snapshotIndex = image.snapshotIndex();
    const frozen: DurableImage = {
      entries: [...image.entries],
      compactedThrough: image.compactedThrough,
      snapshotIndex: () => snapshotIndex,
    };
    this.ghosts.set(id, [...(this.ghosts.get(id) ?? []), frozen]);
  }

  private holds(id: string, index: number, term: number): boolean {
    const image = this.imageOf(id);
    if (image !== null && holdsDurably(image, index, term)) return true;
    return (this.ghosts.get(id) ?? []).some((ghost) => holdsDurably(ghost, index, term));
  }

  private holders(voters: readonly string[], index: number, term: number): string[] {
    return voters.filter((voter) => this.holds(voter, index, term));
  }

  /** A leader's commit index reached `index` (of term `term`) while it used `voters`. */
  checkCommit(leader: string, voters: readonly string[], index: number, term: number): void {
    const holders = this.holders(voters, index, term);
    if (holders.length >= quorumSize(voters.length)) return;
    throw new SimViolation(
      "commit-without-quorum",
      `leader ${leader} committed ${index}/${term} held durably by ${holders.length} of voters [${voters.join(",")}] (${holders.join(",") || "none"})`,
    );
  }

  /** A leader acknowledged a write at `all`: every voter of its configuration must hold it. */
  checkAllAcknowledged(leader: string, voters: readonly string[], index: number, term: number): void {
    const holders = this.holders(voters, index, term);
    if (holders.length === voters.length) return;
    throw new SimViolation(
      "all-without-every-voter",
      `leader ${leader} acknowledged ${index}/${term} at all, held durably by ${holders.join(",") || "none"} of voters [${voters.join(",")}]`,
    );
  }
}
