#!/usr/bin/env bash
# CPU per request: what the middleware costs the threads that serve requests, the emitter's
# thread, and the stand-in daemon that receives the segments, for a hello-world server
# (http_hello) under http_load's load on loopback. Steadier than requests/s on a
# shared VM: it does not depend on how the load generator, the sink and the server share the
# cores.
#
#   tools/bench/server_cpu.sh [--framework beast|httplib] [--sampling all|default|none]
#                             [--baseline untraced|none] [--rounds R] [--duration-s D]
#                             [--rate RPS]
#
# Two servers run side by side, each sending to a UDP sink of its own: the baseline (untraced,
# or traced with no request sampled) and the traced one at --sampling. The load alternates
# between them: R rounds of a D-second slice on each, the baseline first in odd rounds and the
# traced one in even. Per slice, from /proc/PID/task/*/schedstat (ns on the CPU): the serving
# threads (named http_hello), the emitter's (xraysink-send) and the sink's, per request; and
# requests/s. Prints each pair and the medians of the pairs. --rate RPS: open loop at RPS requests
# a second, below saturation: both servers take requests at the same pace, and the cost is that
# of a server at a load a service runs at. Default: closed loop (each as fast as it can).
set -euo pipefail

framework=beast
sampling=default
baseline=untraced
rounds=6
duration_s=2
rate=""
usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
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
    --rate) rate="$2" ;;
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
[[ -z "$rate" || "$rate" =~ ^[1-9][0-9]*$ ]] || bad --rate "$rate" "requests a second, an integer >= 1"

cd "$(dirname "$0")/../.."
# shellcheck source=tools/bench/servers.sh
source tools/bench/servers.sh
bin="$(build_tools)"
work="$(mktemp -d)"
# set by start()
base_sink_pid="" traced_sink_pid="" base_pid="" traced_pid=""
base_sink_port="" traced_sink_port="" base_port="" traced_port=""
cleanup() {
  # shellcheck disable=SC2086 # the empty ones vanish
  kill -TERM $base_pid $traced_pid $base_sink_pid $traced_sink_pid 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# Private copies: other builds in this workspace may replace bazel-bin's files while we run.
cp "$bin/http_load" "$bin/http_hello" "$work/"

# cpu PID: ns on the CPU of the serving threads, then of the others (the emitter's).
cpu() {
  local serving=0 other=0 task ns
  for task in /proc/"$1"/task/*; do
    read -r ns _ <"$task/schedstat" 2>/dev/null || ns=0  # a thread that just ended
    if [[ "$(cat "$task/comm")" == http_hello ]]; then
      serving=$((serving + ns))
    else
      other=$((other + ns))
    fi
  done
  echo "$serving $other"
}

# sink_cpu PID: ns on the CPU of all the sink's threads.
sink_cpu() {
  local total=0 task ns
  for task in /proc/"$1"/task/*; do
    read -r ns _ <"$task/schedstat" 2>/dev/null || ns=0  # a thread that just ended
    total=$((total + ns))
  done
  echo "$total"
}

# slice NAME: "requests seconds serving_ns emitter_ns sink_ns" of one slice of load on server
# NAME (base or traced), after a short warm-up that is not counted.
slice() {
  local pid_var="$1_pid" port_var="$1_port" sink_var="$1_sink_pid" before after sink_before
  local load requests seconds
  "$work/http_load" --url "http://127.0.0.1:${!port_var}/hello" --connections 16 \
    --duration-s 0.3 --warmup-s 0 ${rate:+--rate "$rate"} >/dev/null
  read -r -a before <<<"$(cpu "${!pid_var}")"
  sink_before="$(sink_cpu "${!sink_var}")"
  load="$("$work/http_load" --url "http://127.0.0.1:${!port_var}/hello" --connections 16 \
    --duration-s "$duration_s" --warmup-s 0 ${rate:+--rate "$rate"})"
  read -r -a after <<<"$(cpu "${!pid_var}")"
  requests="$(sed -nE 's/.*"requests":([0-9]+).*/\1/p' <<<"$load")"
  seconds="$(sed -nE 's/.*"seconds":([0-9.]+).*/\1/p' <<<"$load")"
  [[ -n "$requests" && "$requests" != 0 ]] || {
    echo "server_cpu: no result from http_load" >&2
    exit 1
  }
  echo "$requests $seconds $((after[0] - before[0])) $((after[1] - before[1]))" \
    "$(($(sink_cpu "${!sink_var}") - sink_before))"
}

start base_sink "$work/http_load" --udp-sink || exit 1
start traced_sink "$work/http_load" --udp-sink || exit 1
if [[ "$baseline" == untraced ]]; then
  start base "$work/http_hello" --framework "$framework" --traced 0 --port 0 || exit 1
else
  start base "$work/http_hello" --framework "$framework" --traced 1 --port 0 \
    --daemon "127.0.0.1:$base_sink_port" --sampling none || exit 1
fi
start traced "$work/http_hello" --framework "$framework" --traced 1 --port 0 \
  --daemon "127.0.0.1:$traced_sink_port" --sampling "$sampling" || exit 1

echo "$framework: $baseline vs traced at --sampling $sampling, $rounds rounds of ${duration_s}s," \
  "${rate:-closed loop}${rate:+ requests/s}" >&2
for ((round = 1; round <= rounds; ++round)); do
  if ((round % 2)); then
    base="$(slice base)"
    traced="$(slice traced)"
  else
    traced="$(slice traced)"
    base="$(slice base)"
  fi
  echo "$base $traced"
done | awk '
  # median of v[1..n]
  function median(v, n,   i, j, t) {
    for (i = 2; i <= n; ++i)
      for (j = i; j > 1 && v[j - 1] > v[j]; --j) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
  }
  NF == 10 {
    ++n
    # per request, in us: serving threads, emitter thread, sink; and requests/s
    bs = $3 / $1 / 1000; be = $4 / $1 / 1000; bk = $5 / $1 / 1000; br = $1 / $2
    ts = $8 / $6 / 1000; te = $9 / $6 / 1000; tk = $10 / $6 / 1000; tr = $6 / $7
    serving[n] = ts - bs; pct[n] = (ts - bs) * 100 / bs; emitter[n] = te - be; sink[n] = tk - bk
    base[n] = bs; rps[n] = (tr - br) * 100 / br
    printf "serving threads %.2f -> %.2f us/request (%+.2f us, %+.1f %%); emitter thread %+.2f, sink %+.2f us/request; requests/s %.0f -> %.0f (%+.1f %%)\n", bs, ts, ts - bs, pct[n], te - be, tk - bk, br, tr, rps[n]
  }
  END {
    if (n == 0) { print "server_cpu: no complete pair of slices" > "/dev/stderr"; exit 1 }
    printf "median of %d pairs: serving threads %.2f us/request %+.2f us (%+.1f %%); emitter thread %+.2f us; sink %+.2f us; requests/s %+.1f %%\n", n, median(base, n), median(serving, n), median(pct, n), median(emitter, n), median(sink, n), median(rps, n)
  }'
