import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import {
  closeConnections,
  mmapBytesMax,
  openConnections,
  openReadSide,
  pageCacheKibPerConnection,
  walFileBytesKept,
} from "./connections.ts";
import { temporaryDirectory } from "./test-support.ts";

test("every store connection runs with the bounded page cache and no memory-mapped reads", (t) => {
  const file = path.join(temporaryDirectory(t), "bounded.db");
  const connections = openConnections(file, 1_000);
  const querySide = openReadSide(file, 1_000);
  try {
    for (const db of [connections.write, connections.read, querySide.read]) {
      assert.equal(db.prepare("PRAGMA cache_size").get()?.cache_size, BigInt(-pageCacheKibPerConnection));
      assert.equal(db.prepare("PRAGMA mmap_size").get()?.mmap_size, BigInt(mmapBytesMax));
    }
    const limit = connections.write.prepare("PRAGMA journal_size_limit").get();
    assert.equal(
      limit?.journal_size_limit,
      BigInt(walFileBytesKept),
      "the -wal file is cut back after a reset",
    );
  } finally {
    querySide.read.close();
    closeConnections(connections);
  }
});
