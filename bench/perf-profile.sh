#!/usr/bin/env bash
# CPU-time profile of every Baton node under one workload, with Linux `perf` (on-CPU samples only,
# kernel and every thread included, unlike `--cpu-prof`, which samples the main thread's wall time).
# Runs `npm run bench` for one workload with `--perf-basic-prof` so that JIT frames have names,
# attaches `perf record` to each node for the middle of the measured window, and writes per node:
# the split by thread (main, libuv pool, V8 helpers), by area (perf-areas.ts), by object (kernel,
# node binary, JIT code, libc) and the top symbols.
# Usage: bench/perf-profile.sh WORKLOAD OUTDIR [seconds]   (needs perf; run from the project root)
set -euo pipefail
source "$(dirname "$0")/running-cluster.sh"
warmup_s=3
workload=${1:?workload, e.g. w64}
out=${2:?output directory}
seconds=${3:-8}
mkdir -p "$out"
npm run bench -- --workloads "$workload" --runs 1 --warmup "$warmup_s" --duration $((seconds + 4)) \
  --node-options "--perf-basic-prof" >"$out/bench.txt" 2>&1 &
bench=$!
# The cluster starts, the table is created (and for reads, filled) and the warm-up runs.
find_node_pids
wait_for_load
for pid in $pids; do
  id=$(node_id_of "$pid")
  role=$(curl -s -m 2 "http://127.0.0.1:$(http_port_of "$pid")/v1/status" | grep -o '"role":"[a-z]*"' | head -1 | cut -d'"' -f4)
  echo "$id $pid $role" >>"$out/nodes.txt"
  perf record -e cpu-clock -F 997 -g -p "$pid" -o "$out/$id.perf.data" -- sleep "$seconds" >/dev/null 2>&1 &
done
wait "$bench"
sleep 1
# `head` closes the reports' pipes early: that is not a failure.
set +o pipefail
while read -r id pid role; do
  {
    echo "# $id ($role), pid $pid"
    perf report -i "$out/$id.perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]'
    echo
    # perf script sometimes aborts (a double free in perf itself): try again.
    for _ in 1 2 3; do
      perf script --no-inline -i "$out/$id.perf.data" >"$out/$id.script" 2>/dev/null && break
    done
    "$(dirname "$0")/../node_modules/.bin/node" "$(dirname "$0")/perf-areas.ts" <"$out/$id.script"
    echo
    perf report -i "$out/$id.perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -12
    echo
    perf report -i "$out/$id.perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -40
  } >"$out/$id.txt"
done <"$out/nodes.txt"
cat "$out/bench.txt" | tail -4
echo "reports: $out/n*.txt"
