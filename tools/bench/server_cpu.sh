#!/usr/bin/env bash
# Server CPU per request: what the middleware costs the threads that serve requests, apart from
# the emitter's thread, for a hello-world server (http_hello) under http_load's closed-loop load
# on loopback. Steadier than requests/s on a shared VM: it does not depend on how the load
# generator, the sink and the server share the cores.
#
#   tools/bench/server_cpu.sh [--framework beast|httplib] [--sampling all|default|none]
#                             [--baseline untraced|none] [--rounds R] [--duration-s D]
#
# Two servers run side by side, the baseline (untraced, or traced with no request sampled) and
# the traced one at --sampling, and the load alternates between them: R rounds of a D-second
# slice each. Per slice, from /proc/PID/task/*/stat: CPU of the serving threads (named
# http_hello) and of the emitter's (xraysink-send) per request. Prints each pair and the medians.
set -euo pipefail

framework=beast
sampling=default
baseline=untraced
rounds=6
duration_s=2
usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while (($#)); do
  (($# >= 2)) || usage
  case "$1" in
    --framework) framework="$2" ;;
    --sampling) sampling="$2" ;;
    --baseline) baseline="$2" ;;
    --rounds) rounds="$2" ;;
    --duration-s) duration_s="$2" ;;
    *) usage ;;
  esac
  shift 2
done
bad() {
  echo "server_cpu: bad $1 '$2': expected $3" >&2
  exit 2
}
[[ "$framework" == beast || "$framework" == httplib ]] || bad --framework "$framework" "beast or httplib"
[[ "$sampling" =~ ^(all|default|none)$ ]] || bad --sampling "$sampling" "all, default or none"
[[ "$baseline" == untraced || "$baseline" == none ]] || bad --baseline "$baseline" "untraced or none"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || bad --rounds "$rounds" "an integer >= 1"
[[ "$duration_s" =~ ^[0-9]+(\.[0-9]+)?$ ]] || bad --duration-s "$duration_s" "seconds"

cd "$(dirname "$0")/../.."
bazel build -c opt //tools/bench:http_load //tools/bench:http_hello
# shellcheck source=tools/bench/servers.sh
source tools/bench/servers.sh
work="$(mktemp -d)"
sink_pid="" base_pid="" traced_pid="" sink_port="" base_port="" traced_port="" # set by start()
cleanup() {
  # shellcheck disable=SC2086 # the empty ones vanish
  kill -TERM $sink_pid $base_pid $traced_pid 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
bazel_bin="$(bazel info -c opt bazel-bin)"
cp "$bazel_bin/tools/bench/http_load" "$bazel_bin/tools/bench/http_hello" "$work/"

# cpu PID: clock ticks of the serving threads, then of the others (the emitter's).
cpu() {
  local serving=0 other=0 task ticks
  for task in /proc/"$1"/task/*; do
    ticks="$(awk '{ print $14 + $15 }' "$task/stat")"
    if [[ "$(cat "$task/comm")" == http_hello ]]; then
      serving=$((serving + ticks))
    else
      other=$((other + ticks))
    fi
  done
  echo "$serving $other"
}

# slice PID PORT: "requests serving_ticks other_ticks" of one slice of load (after a short
# warm-up that is not counted).
slice() {
  local before after requests
  "$work/http_load" --url "http://127.0.0.1:$2/hello" --connections 16 --duration-s 0.3 \
    --warmup-s 0 >/dev/null
  read -r -a before <<<"$(cpu "$1")"
  requests="$("$work/http_load" --url "http://127.0.0.1:$2/hello" --connections 16 \
    --duration-s "$duration_s" --warmup-s 0 | sed -nE 's/.*"requests":([0-9]+).*/\1/p')"
  read -r -a after <<<"$(cpu "$1")"
  [[ -n "$requests" ]] || { echo "server_cpu: no result from http_load" >&2; exit 1; }
  echo "$requests $((after[0] - before[0])) $((after[1] - before[1]))"
}

start sink "$work/http_load" --udp-sink || exit 1
daemon="127.0.0.1:$sink_port"
if [[ "$baseline" == untraced ]]; then
  start base "$work/http_hello" --framework "$framework" --traced 0 --port 0 || exit 1
else
  start base "$work/http_hello" --framework "$framework" --traced 1 --port 0 --daemon "$daemon" \
    --sampling none || exit 1
fi
start traced "$work/http_hello" --framework "$framework" --traced 1 --port 0 --daemon "$daemon" \
  --sampling "$sampling" || exit 1

echo "$framework: $baseline vs traced at --sampling $sampling, $rounds rounds of ${duration_s}s" >&2
for ((round = 1; round <= rounds; ++round)); do
  echo "$(slice "$base_pid" "$base_port") $(slice "$traced_pid" "$traced_port")"
done | python3 -c '
import os, statistics, sys
tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
rows = [list(map(int, line.split())) for line in sys.stdin if len(line.split()) == 6]
base = [r[1] * tick_us / r[0] for r in rows]
traced = [r[4] * tick_us / r[3] for r in rows]
sender = [r[5] * tick_us / r[3] for r in rows]
for b, t, s in zip(base, traced, sender):
    print("serving threads %.2f -> %.2f us/request (%+.2f us, %+.1f %%); emitter thread %.2f us/request"
          % (b, t, t - b, (t - b) * 100 / b, s))
print("median: %.2f -> %.2f us/request, %+.2f us (%+.1f %%); emitter thread %.2f us/request"
      % (statistics.median(base), statistics.median(traced),
         statistics.median([t - b for b, t in zip(base, traced)]),
         statistics.median([(t - b) * 100 / b for b, t in zip(base, traced)]),
         statistics.median(sender)))'
