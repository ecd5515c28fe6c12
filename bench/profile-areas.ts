/** The project's source areas for CPU profiles: a file of the nearest project frame maps to its area; first match wins. */
export const projectAreas: readonly (readonly [RegExp, string])[] = [
  [/\/src\/wal\//, "WAL (log write, fsync callbacks)"],
  [
    /\/src\/store\/(payload|leader-batch|replica-apply|trigger-suspension)\.ts/,
    "changeset (build, encode, apply)",
  ],
  [/\/src\/store\//, "SQLite execute / apply (store)"],
  [/\/src\/consensus\//, "consensus step"],
  [/\/src\/transport\/|\/src\/node\/(message-codec|peer-envelope)\.ts/, "transport encode/decode"],
  [/\/src\/http\/|\/src\/api\//, "HTTP handling (Baton)"],
  [/\/src\/node\//, "node layer (loop, write/read path)"],
  [/\/src\/cli\/|\/node_modules\/pino|\/node_modules\/sonic-boom/, "logging"],
  [/\/src\/lib\/|\/src\/types\//, "lib (assert, errors, ids)"],
];
