#!/usr/bin/env bash
# System calls per operation of every Baton node under one workload: runs `npm run bench` for that
# workload, attaches `strace -f -yy` to each node for a few seconds in the middle of the measured
# window, and counts calls by kind and by what they touch (HTTP sockets, peer sockets, the Raft
# log's files, SQLite's files). Operations are the HTTP answers the leader wrote in that time.
# strace slows the traced processes (only the listed calls stop, through --seccomp-bpf), which
# changes how much work each call batches: read counts as upper bounds, never read times from it.
# With `perf` as the fourth argument, counts the same calls with perf's syscall tracepoints instead
# (next to no slowdown, so batching is as in an untraced run, but no split by target); operations
# are then the commit index's advance (writes) over the traced seconds, also printed.
# Usage: bench/syscalls.sh WORKLOAD OUTDIR [seconds] [strace|perf]   (run from the project root)
set -euo pipefail
source "$(dirname "$0")/running-cluster.sh"
warmup_s=3
workload=${1:?workload, e.g. w64}
out=${2:?output directory}
seconds=${3:-4}
mode=${4:-strace}
perf_events=$(printf 'syscalls:sys_enter_%s,' read write writev pwrite64 fdatasync fcntl epoll_pwait futex)
perf_events=${perf_events%,}
mkdir -p "$out"
npm run bench -- --workloads "$workload" --runs 1 --warmup "$warmup_s" --duration $((seconds + 6)) >"$out/bench.txt" 2>&1 &
bench=$!
find_node_pids
wait_for_load
for pid in $pids; do
  id=$(node_id_of "$pid")
  echo "$id $pid - $(http_port_of "$pid")" >>"$out/nodes.txt"
  if [ "$mode" = perf ]; then
    perf stat -x, -e "$perf_events" -p "$pid" -o "$out/$id.perfstat" -- sleep "$seconds" >/dev/null 2>&1 &
    continue
  fi
  timeout "$seconds" strace -f -yy --seccomp-bpf -p "$pid" -o "$out/$id.strace" \
    -e trace=read,write,writev,pwrite64,pwritev,pread64,fdatasync,fsync,fcntl \
    >/dev/null 2>&1 &
done
if [ "$mode" = perf ]; then
  port=$(http_port_of "$(echo "$pids" | head -1)")
  before=$(commit_index_of "$port")
  sleep "$seconds"
  after=$(commit_index_of "$port")
  wait "$bench" || true
  # Writes: one log entry per operation. Reads commit nothing: take the bench's own rate.
  ops=$((after - before))
  if [ "$ops" -lt 10 ]; then
    ops=$(grep -E "^run 1" "$out/bench.txt" | awk -v s="$seconds" '{ print int($5 * s) }')
    echo "operations: the bench's rate x ${seconds} s = $ops" | tee "$out/summary.txt"
  else
    echo "operations: the commit index advanced $ops in ${seconds} s" | tee "$out/summary.txt"
  fi
  while read -r id pid role port; do
    echo "# $id: calls per operation: $(grep -E '^[0-9]' "$out/$id.perfstat" | awk -F, -v ops="$ops" '{ sub(/syscalls:sys_enter_/, "", $3); printf "%s %.2f  ", $3, $1 / ops }')"
  done <"$out/nodes.txt" | tee -a "$out/summary.txt"
  tail -1 "$out/bench.txt"
  exit 0
fi
wait "$bench" || true
sleep 1
# The leader is the node that wrote the HTTP answers (a status probe can be late under load).
leader_answers=0
leader=""
while read -r id pid role port; do
  answers=$(grep -cE "^[0-9]+ +(write|writev)\([0-9]+<TCP:\[127.0.0.1:$port->.*HTTP/1.1 200" "$out/$id.strace" || true)
  if [ "$answers" -gt "$leader_answers" ]; then leader_answers=$answers leader=$id; fi
done <"$out/nodes.txt"
echo "$leader $leader_answers" >"$out/answers.txt"
while read -r id pid role port; do
  role=follower
  [ "$id" = "$leader" ] && role=leader
  echo "# $id ($role): calls per operation ($leader_answers HTTP answers written by the leader while traced)"
  awk -v port="$port" -v ops="$leader_answers" '
    # A call interrupted by another thread shows twice: count its first line only.
    /resumed>|^[0-9]+ +\+\+\+|^[0-9]+ +---/ { next }
    {
      call = $2; sub(/\(.*/, "", call)
      target = "other"
      if ($0 ~ "<TCP:\\[127.0.0.1:" port "->") target = "http socket"
      else if ($0 ~ /<TCP:/) target = "peer socket"
      else if ($0 ~ /\/log\//) target = "raft log file"
      else if ($0 ~ /baton\.db-wal>/) target = "sqlite wal"
      else if ($0 ~ /baton\.db-shm>/) target = "sqlite shm"
      else if ($0 ~ /baton\.db>/) target = "sqlite db"
      else if ($0 ~ /<anon_inode:|<pipe:/) target = "event loop wakeups"
      count[call " · " target]++
    }
    END { for (k in count) printf "%8.2f  %s\n", count[k] / (ops > 0 ? ops : 1), k }
  ' "$out/$id.strace" | sort -rn | head -20
  echo
done <"$out/nodes.txt" | tee "$out/summary.txt"
tail -3 "$out/bench.txt"
