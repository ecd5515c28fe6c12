/**
 * Child process for the crash test: appends entries forever with several concurrent appenders
 * and prints `durable N` each time an append is reported durable. The parent kills it with
 * SIGKILL at a random moment. Writes to a pipe are synchronous on Linux, so a line the parent
 * read was printed before the kill.
 */
import { logIndex, term } from "../../types/ids.ts";
import { EntryKind } from "../../types/log-entry.ts";
import { Wal } from "../wal.ts";
import { crashEntryData } from "./crash-entry.ts";

const directory = process.argv[2];
if (directory === undefined) throw new Error("usage: crash-writer.ts DIRECTORY");
const appendersMax = 8;
const { wal } = Wal.open(directory, { segmentBytesMax: 4096 });
let next = wal.lastIndex + 1;
const entryTerm = term(Math.max(1, wal.lastTerm));

async function appender(): Promise<void> {
  for (;;) {
    const index = next++;
    await wal.append([{ index: logIndex(index), term: entryTerm, kind: EntryKind.command, data: crashEntryData(index) }]);
    process.stdout.write(`durable ${index}\n`);
  }
}
process.stdout.write(`ready ${wal.lastIndex}\n`);
for (let i = 0; i < appendersMax; i++) void appender();
