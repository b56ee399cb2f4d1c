#!/usr/bin/env bash
# HTTP middleware benchmark: requests/s and p99 latency of a hello-world server (http_hello)
# with and without xraysink's middleware, per framework, under the same keep-alive load
# (http_load) on loopback. Traced servers send their segments to a counting UDP sink
# (http_load --udp-sink). With --sampling all (the default) every request is sampled, so the
# full per-request cost is measured, and the counts are checked: one segment and one datagram
# per request, none dropped. --sampling default uses the SDKs' default rule (1 a second, then
# 5 %), what a service runs with; then every sampled segment must arrive. --sampling none
# traces every request and samples none: the cost of the unsampled path alone.
#
#   tools/bench/run_http_bench.sh [--connections C] [--rounds R] [--slice-ms M] [--warmup-s W]
#                                 [--frameworks "httplib beast"] [--pin 0|1]
#                                 [--sampling all|default|none] [--rate RPS]
#
# Per framework, the untraced and the traced server run side by side and one http_load process
# alternates its load between them (http_load --versus): R rounds of one slice of M ms on each,
# the untraced one first in odd rounds, every connection kept open throughout, after W seconds
# of warm-up on each. The table gives each overhead as the median over rounds of the traced
# slice against its neighbouring untraced one, with the bounds of its 95 % confidence interval:
# on a shared VM whose speed drifts from one second to the next, neighbouring slices see the
# same machine, and the interval says what the drift leaves uncertain.
# --rate RPS: open loop at RPS requests a second, each request timed from when it was due: the
# latency the middleware adds below saturation, which is where the p99 target is judged. The
# default is a closed loop, for requests/s at saturation, where latency is mostly queueing (p99
# is about connections / throughput, so it moves with any loss of throughput).
# --pin 1 pins the servers to SERVER_CPU (default 0), the load generator and the sink to
# CLIENT_CPU (default 1): off by default, as on a shared machine a pinned server cannot escape
# another process landing on its core.
# p99 is timed from when each request was due (open loop) or sent (closed loop); svc (service)
# p99 from when it was written, which leaves out the load generator's own delays in sending.
# Targets: throughput overhead <= 5 %, p99 overhead <= 50 us. A target is "met" when the whole
# interval is within it, "missed" when the whole interval is beyond it, else "not resolved".
set -euo pipefail

connections=16
slice_ms=200
warmup_s=1
rounds=150
frameworks="httplib beast"
pin=0
sampling=all
rate=""
usage() {
  sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while (($#)); do
  (($# >= 2)) || usage
  case "$1" in
    --connections) connections="$2" ;;
    --slice-ms) slice_ms="$2" ;;
    --warmup-s) warmup_s="$2" ;;
    --rounds) rounds="$2" ;;
    --frameworks) frameworks="$2" ;;
    --pin) pin="$2" ;;
    --sampling) sampling="$2" ;;
    --rate) rate="$2" ;;
    *) usage ;;
  esac
  shift 2
done
if [[ "$sampling" != all && "$sampling" != default && "$sampling" != none ]]; then
  echo "run_http_bench: bad --sampling '$sampling': expected all, default or none" >&2
  exit 2
fi
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]]; then
  echo "run_http_bench: bad --rounds '$rounds': expected an integer >= 1" >&2
  exit 2
fi
if ! [[ "$slice_ms" =~ ^[1-9][0-9]*$ ]]; then
  echo "run_http_bench: bad --slice-ms '$slice_ms': expected milliseconds, an integer >= 1" >&2
  exit 2
fi
if [[ -n "$rate" ]] && ! [[ "$rate" =~ ^[1-9][0-9]*$ ]]; then
  echo "run_http_bench: bad --rate '$rate': expected requests a second, an integer >= 1" >&2
  exit 2
fi

cd "$(dirname "$0")/../.."
# shellcheck source=tools/bench/servers.sh
source tools/bench/servers.sh
bin="$(build_tools)"
# Private copies: other builds in this workspace may replace bazel-bin's files while we run.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$bin/http_load" "$bin/http_hello" "$work/"

pin_server=()
pin_client=()
sink_port="" plain_port="" traced_port="" # set by start()
if ((pin)) && command -v taskset >/dev/null && (($(nproc) >= 2)); then
  pin_server=(taskset -c "${SERVER_CPU:-0}")
  pin_client=(taskset -c "${CLIENT_CPU:-1}")
fi

field() { sed -nE "s/.*\"$2\":([-0-9.]+).*/\1/p" <<<"$1"; }

# run FRAMEWORK: both servers (and the sink) up, then the alternating load; appends the
# result's line to $work/results and checks the traced server's counters against the sink's.
run() {
  local framework="$1" load server sink requests
  start sink "${pin_client[@]}" "$work/http_load" --udp-sink || return 1
  if ! start plain "${pin_server[@]}" "$work/http_hello" --framework "$framework" --traced 0 \
    --port 0; then
    stop sink >/dev/null
    return 1
  fi
  if ! start traced "${pin_server[@]}" "$work/http_hello" --framework "$framework" --traced 1 \
    --port 0 --daemon "127.0.0.1:$sink_port" --sampling "$sampling"; then
    stop plain >/dev/null
    stop sink >/dev/null
    return 1
  fi
  load="$("${pin_client[@]}" "$work/http_load" --url "http://127.0.0.1:$plain_port/hello" \
    --versus "http://127.0.0.1:$traced_port/hello" --connections "$connections" \
    --rounds "$rounds" --slice-ms "$slice_ms" --warmup-s "$warmup_s" ${rate:+--rate "$rate"} ||
    true)"
  stop plain >/dev/null
  server="$(stop traced)"
  sink="$(stop sink)"
  echo "  $framework load=$load" >&2
  echo "  $framework traced server=$server sink=$sink" >&2
  if [[ -z "$(field "$load" rps_overhead_pct)" ]]; then
    echo "run_http_bench: no result from http_load for $framework" >&2
    return 1
  fi
  if [[ "$(field "$load" errors_a)" != 0 || "$(field "$load" errors_b)" != 0 ]]; then
    echo "run_http_bench: WARNING: $framework: errors: untraced $(field "$load" errors_a)," \
      "traced $(field "$load" errors_b)" >&2
  fi
  requests="$(field "$server" requests)"
  if [[ "$sampling" == all && "$(field "$server" segments_sent)" != "$requests" ]] ||
    [[ "$sampling" == none && "$(field "$server" segments_sent)" != 0 ]] ||
    [[ "$(field "$server" dropped)" != 0 ]] ||
    [[ "$(field "$sink" datagrams)" != "$(field "$server" segments_sent)" ]]; then
    echo "run_http_bench: WARNING: a segment not sent, or a datagram not received" >&2
  fi
  echo "$framework $load" >>"$work/results"
}

echo "load: $connections connections, ${rate:-closed loop}${rate:+ requests/s}, $rounds round(s)" \
  "of ${slice_ms} ms per server after ${warmup_s}s of warm-up each; sampling: $sampling;" \
  "pinning: ${pin_server[*]:-none} / ${pin_client[*]:-none}" >&2
touch "$work/results"
for framework in $frameworks; do
  run "$framework" || true
done

# verdict VALUE LOW HIGH TARGET: met, missed or not resolved (see the top of this file).
verdict() {
  awk -v low="$2" -v high="$3" -v target="$4" 'BEGIN {
    if (high <= target) print "met"; else if (low > target) print "missed"; else print "not resolved" }'
}

printf '\n%-8s %9s %9s %7s %7s %7s %9s %9s %8s %8s %8s %8s %8s %8s %8s\n' framework \
  rps_untr rps_trac ovh_% ovh_lo ovh_hi p99_untr p99_trac p99_ovh p99_lo p99_hi p50_ovh \
  svc_ovh svc_lo svc_hi
while read -r framework load; do
  printf '%-8s %9s %9s %7s %7s %7s %9s %9s %8s %8s %8s %8s %8s %8s %8s\n' "$framework" \
    "$(field "$load" rps_a)" "$(field "$load" rps_b)" "$(field "$load" rps_overhead_pct)" \
    "$(field "$load" rps_overhead_low)" "$(field "$load" rps_overhead_high)" \
    "$(field "$load" p99_a_us)" "$(field "$load" p99_b_us)" "$(field "$load" p99_overhead_us)" \
    "$(field "$load" p99_overhead_low)" "$(field "$load" p99_overhead_high)" \
    "$(field "$load" p50_overhead_us)" "$(field "$load" service_p99_overhead_us)" \
    "$(field "$load" service_p99_overhead_low)" "$(field "$load" service_p99_overhead_high)"
done <"$work/results"
echo
closed_loop_note=""
[[ -n "$rate" ]] || closed_loop_note=" (closed loop: p99 is queueing; judge it with --rate)"
while read -r framework load; do
  echo "$framework: throughput overhead $(field "$load" rps_overhead_pct) %" \
    "[$(field "$load" rps_overhead_low), $(field "$load" rps_overhead_high)]," \
    "target <= 5 %: $(verdict "$(field "$load" rps_overhead_pct)" \
      "$(field "$load" rps_overhead_low)" "$(field "$load" rps_overhead_high)" 5);" \
    "p99 overhead $(field "$load" p99_overhead_us) us" \
    "[$(field "$load" p99_overhead_low), $(field "$load" p99_overhead_high)]," \
    "target <= 50 us: $(verdict "$(field "$load" p99_overhead_us)" \
      "$(field "$load" p99_overhead_low)" "$(field "$load" p99_overhead_high)" 50)$closed_loop_note;" \
    "service p99 overhead $(field "$load" service_p99_overhead_us) us" \
    "[$(field "$load" service_p99_overhead_low), $(field "$load" service_p99_overhead_high)]"
done <"$work/results"
