#!/usr/bin/env bash
# The main job: installs what is missing, starts the local daemon (xray_local) on a free port,
# runs the demo against it, and prints every trace the daemon received as a tree.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

bazel build -c opt //tools/local_daemon:xray_local //tools:demo 2>&1 | grep -Ev '^(INFO|Loading|Analyzing)' >&2 || true
bin=$(bazel info -c opt bazel-bin 2>/dev/null)

expected_traces=2
out=$(mktemp -d /tmp/xraysink-demo.XXXXXX)
"$bin/tools/local_daemon/xray_local" --address 127.0.0.1:0 --exit-after-traces "$expected_traces" \
  --jsonl "$out/segments.jsonl" > "$out/daemon.out" &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' EXIT

# The daemon's first line is "listening on 127.0.0.1:PORT".
for _ in $(seq 100); do
  grep -q '^listening on ' "$out/daemon.out" 2>/dev/null && break
  kill -0 $daemon 2>/dev/null || { echo "xray_local failed to start" >&2; exit 1; }
  sleep 0.1
done
address=$(sed -n 's/^listening on //p' "$out/daemon.out" | head -n 1)
[ -n "$address" ] || { echo "xray_local did not report its address" >&2; exit 1; }

AWS_XRAY_DAEMON_ADDRESS=$address "$bin/tools/demo"

# xray_local exits once it has printed every trace (bounded wait).
for _ in $(seq 100); do kill -0 $daemon 2>/dev/null || break; sleep 0.1; done
kill $daemon 2>/dev/null || true
wait $daemon 2>/dev/null || true
cat "$out/daemon.out"
echo "(every received document: $out/segments.jsonl)"
