#!/usr/bin/env bash
# The main job: installs what is missing, starts the local daemon (xray_local) on a free port,
# two chained demo services (front --downstream back) sending to it, sends a burst of requests
# to the front service, and prints every trace the daemon assembled as a tree.
# Usage: tools/run_demo.sh [httplib|beast]   (the framework both services use; default httplib)
set -euo pipefail
cd "$(dirname "$0")/.."
framework=${1:-httplib}
tools/setup.sh

bazel build -c opt //tools/local_daemon:xray_local //tools:demo 2>&1 |
  grep -Ev '^(INFO|Loading|Analyzing|\[)' >&2 || true
bin=$(bazel info -c opt bazel-bin 2>/dev/null)
out=$(mktemp -d /tmp/xraysink-demo.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# Waits for the first line "listening on X" of a process's output file; prints X.
listening_on() {
  local file=$1 pid=$2
  for _ in $(seq 200); do
    if grep -q '^listening on ' "$file" 2>/dev/null; then
      sed -n 's/^listening on //p' "$file" | head -n 1
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited: $(cat "$file")" >&2; return 1; }
    sleep 0.05
  done
  echo "no 'listening on' from process $pid" >&2
  return 1
}

# Every request below is sampled (tools/demo_sampling_rules.json), so the daemon sees:
# 2 start-up jobs (one per service) + 7 requests (the downstream call and the /work task join
# their request's trace) = 9 traces.
paths=(/hello /work /downstream /fail /throw /limited /nope)
expected_traces=$((2 + ${#paths[@]}))

"$bin/tools/local_daemon/xray_local" --address 127.0.0.1:0 --quiet-ms 300 \
  --exit-after-traces "$expected_traces" --jsonl "$out/segments.jsonl" > "$out/daemon.out" &
pids+=($!)
daemon=$(listening_on "$out/daemon.out" "${pids[-1]}")
export AWS_XRAY_DAEMON_ADDRESS=$daemon

# xray_local takes segments only (no sampling API, unlike the real daemon): local rules alone.
common=(--framework "$framework" --sampling-rules tools/demo_sampling_rules.json
        --local-sampling-only --log-group /demo/services)
"$bin/tools/demo" --port 0 --name demo-back "${common[@]}" > "$out/back.out" 2> "$out/back.log" &
pids+=($!)
back=$(listening_on "$out/back.out" "${pids[-1]}")
"$bin/tools/demo" --port 0 --name demo-front --downstream "http://127.0.0.1:$back" "${common[@]}" \
  > "$out/front.out" 2> "$out/front.log" &
pids+=($!)
front=$(listening_on "$out/front.out" "${pids[-1]}")

echo "xray_local on $daemon; demo-front ($framework) on :$front -> demo-back on :$back"
"$bin/tools/demo" --client "http://127.0.0.1:$front" "${paths[@]}" || true

# xray_local exits once it has printed every expected trace (bounded wait).
for _ in $(seq 200); do kill -0 "${pids[0]}" 2>/dev/null || break; sleep 0.05; done
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true
echo
cat "$out/daemon.out"
echo
echo "log lines of demo-front (trace ids link them to the traces above):"
sed -n '1,12p' "$out/front.log"
echo "(every received document: $out/segments.jsonl)"
