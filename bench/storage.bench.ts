/**
 * `npm run bench:storage`: the storage layer's figures — WAL group commit (appends/s, MB/s,
 * fsyncs/s at 1, 16 and 256 appenders, 200 B and 4 KiB payloads) and the store's execute and
 * apply rates (single-row insert batches of 1 and 100). Medians of 3 runs each. Then what background
 * checkpoints cost a steady writer's event loop (`checkpoint.bench.ts`), one run of 20 s.
 */
import { benchCheckpoints, printCheckpointFigures } from "./checkpoint.bench.ts";
import { benchStore, printStoreFigures } from "./store.bench.ts";
import { benchWal, printWalFigures } from "./wal.bench.ts";

printWalFigures(await benchWal());
console.log("");
printStoreFigures(await benchStore());
console.log("");
printCheckpointFigures(await benchCheckpoints(20));
