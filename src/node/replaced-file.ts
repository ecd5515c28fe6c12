/**
 * A small file a running node rewrites now and then (when it last heard from each member, what of
 * its history the leader confirmed), written off the event loop: a temporary file, then a rename
 * over the old one, both on libuv's thread pool. On ext4 a rename that replaces a file first starts
 * writing the new file's data out, and an fsync waits for the journal; while the disk was busy
 * (other nodes' fsyncs, a 40 MB entry being applied) each took 0.5-1.5 s on a node's main thread,
 * which meanwhile answered nothing, heartbeats included.
 *
 * Not fsynced: these files are worth losing in a crash (contacts are advisory, a lost replicated
 * mark only means records are sent again); the rename keeps each one whole. At most one write is
 * under way; what `replace` asks meanwhile waits, and only the latest text waiting is written.
 */
import fs from "node:fs";
import path from "node:path";

export class ReplacedFile {
  readonly #file: string;
  readonly #onError: (error: Error) => void;
  /** The text to write after the write under way; a newer `replace` overwrites it. */
  #waiting: string | null = null;
  #writing: Promise<void> | null = null;
  /** Texts replaced by a newer one before they were written (for tests). */
  superseded = 0;

  constructor(file: string, onError: (error: Error) => void) {
    this.#file = file;
    this.#onError = onError;
  }

  replace(text: string): void {
    if (this.#waiting !== null) this.superseded++;
    this.#waiting = text;
    this.#writing ??= this.#drain().finally(() => {
      this.#writing = null;
    });
  }

  /** Resolves once nothing is under way or waiting (before the data directory is closed or removed). */
  async settled(): Promise<void> {
    while (this.#writing !== null) await this.#writing;
  }

  async #drain(): Promise<void> {
    while (this.#waiting !== null) {
      const text = this.#waiting;
      this.#waiting = null;
      try {
        await fs.promises.mkdir(path.dirname(this.#file), { recursive: true });
        await fs.promises.writeFile(`${this.#file}.tmp`, text);
        await fs.promises.rename(`${this.#file}.tmp`, this.#file);
      } catch (error) {
        this.#onError(error as Error);
      }
    }
  }
}
