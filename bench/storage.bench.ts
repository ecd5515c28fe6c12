/**
 * `npm run bench:storage`: the storage layer's figures — WAL group commit (appends/s, MB/s,
 * fsyncs/s at 1, 16 and 256 appenders, 200 B and 4 KiB payloads) and the store's execute and
 * apply rates (single-row insert batches of 1 and 100). Medians of 3 runs each.
 */
import { benchStore, printStoreFigures } from "./store.bench.ts";
import { benchWal, printWalFigures } from "./wal.bench.ts";

printWalFigures(await benchWal());
console.log("");
printStoreFigures(await benchStore());
