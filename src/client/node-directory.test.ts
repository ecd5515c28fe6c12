/**
 * Node URLs and the leader belief.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { NodeDirectory, nodesKnownMax, normalizeNodeUrl } from "./node-directory.ts";

describe("node URLs", () => {
  test("URLs and bare host:port addresses normalise to one base URL form", () => {
    assert.equal(normalizeNodeUrl("http://127.0.0.1:4001/"), "http://127.0.0.1:4001");
    assert.equal(normalizeNodeUrl("127.0.0.1:4001"), "http://127.0.0.1:4001");
    assert.equal(normalizeNodeUrl("127.0.0.1:4001", "https:"), "https://127.0.0.1:4001");
    assert.equal(normalizeNodeUrl("https://db.example/baton//"), "https://db.example/baton");
    assert.equal(normalizeNodeUrl("[::1]:4001"), "http://[::1]:4001");
    for (const bad of ["", "ftp://x", "http://x?y=1", "http://user:pw@x", "http://"]) {
      assert.equal(normalizeNodeUrl(bad), undefined, bad);
    }
  });
});

describe("node directory", () => {
  test("a leader advertised as host:port is adopted with the advertising node's scheme", () => {
    const directory = new NodeDirectory(["https://a:1", "https://b:2"]);
    const url = directory.learnLeader({ id: "n3", http: "c:3" }, "https://a:1", 0);
    assert.equal(url, "https://c:3");
    assert.equal(directory.leaderUrl, "https://c:3");
    assert.deepEqual(directory.urls, ["https://a:1", "https://b:2", "https://c:3"]);
    directory.forgetLeader("https://a:1");
    assert.equal(directory.leaderUrl, "https://c:3", "only the believed leader's failure drops the belief");
    directory.forgetLeader("https://c:3");
    assert.equal(directory.leaderUrl, undefined);
  });

  test("round robin visits every node and skips a node that just failed", () => {
    const directory = new NodeDirectory(["http://a", "http://b", "http://c"]);
    assert.deepEqual(
      [directory.nextUrl(), directory.nextUrl(), directory.nextUrl()],
      ["http://a", "http://b", "http://c"],
    );
    assert.equal(directory.nextUrl(), "http://a");
    directory.skipPast("http://b");
    assert.equal(directory.nextUrl(), "http://c");
  });

  test("the node list is bounded, whatever the servers advertise", () => {
    const directory = new NodeDirectory(["http://seed"]);
    const members = Array.from({ length: nodesKnownMax * 2 }, (_, i) => ({ id: `n${i}`, http: `h${i}:1` }));
    directory.learnMembers(members, "http://seed");
    assert.equal(directory.urls.length, nodesKnownMax);
  });
});
