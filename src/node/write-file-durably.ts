/** The node's small text files (join record, recovery record, history): written whole or not at all. */
import fs from "node:fs";
import path from "node:path";

/** Writes `text` to `file` atomically and durably: a temporary file, fsync, rename, fsync of the directory. */
export function writeFileDurably(file: string, text: string): void {
  const descriptor = fs.openSync(`${file}.tmp`, "w");
  try {
    fs.writeFileSync(descriptor, text);
    fs.fsyncSync(descriptor);
  } finally {
    fs.closeSync(descriptor);
  }
  fs.renameSync(`${file}.tmp`, file);
  const directory = fs.openSync(path.dirname(file), "r");
  try {
    fs.fsyncSync(directory);
  } finally {
    fs.closeSync(directory);
  }
}
