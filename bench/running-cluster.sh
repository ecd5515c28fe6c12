# Sourced by perf-profile.sh and syscalls.sh: finds the nodes of the cluster `npm run bench` runs
# and waits until its workload is under way, so that a tracer attaches inside the measured window.

# Sets `pids` to the three node processes of the running bench (bounded wait).
find_node_pids() {
  for _ in $(seq 1 300); do
    pids=$(pgrep -f "bin/baton start --id n[0-9] --data /tmp/baton-bench-" || true)
    [ "$(echo "$pids" | grep -c .)" -ge 3 ] && return 0
    sleep 0.2
  done
  echo "no bench cluster found" >&2
  return 1
}

http_port_of() { tr '\0' ' ' <"/proc/$1/cmdline" | sed -E 's/.*--http 127\.0\.0\.1:([0-9]+).*/\1/'; }
node_id_of() { tr '\0' ' ' <"/proc/$1/cmdline" | sed -E 's/.*--id (n[0-9]+).*/\1/'; }
commit_index_of() { curl -s -m 2 "http://127.0.0.1:$1/v1/status" | grep -o '"commitIndex":[0-9]*' | head -1 | cut -d: -f2; }

# Waits until the load runs: the table exists and, for reads, the 1,000 keys are written (commit
# index 12 or more), then `warmup_s` + 1 seconds, the bench's warm-up and a margin.
wait_for_load() {
  local port
  port=$(http_port_of "$(echo "$pids" | head -1)")
  for _ in $(seq 1 600); do
    [ "$(commit_index_of "$port" || echo 0)" -ge 12 ] 2>/dev/null && break
    sleep 0.1
  done
  sleep $((warmup_s + 1))
}
