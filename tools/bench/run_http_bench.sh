#!/usr/bin/env bash
# HTTP middleware benchmark: requests/s and p99 latency of a hello-world server (http_hello)
# with and without xraysink's middleware, per framework, under the same closed-loop keep-alive
# load (http_load) on loopback. Traced servers send their segments to a counting UDP sink
# (http_load --udp-sink). With --sampling all (the default) every request is sampled, so the
# full per-request cost is measured, and the counts are checked: one segment and one datagram
# per request, none dropped. --sampling default uses the SDKs' default rule (1 a second, then
# 5 %), what a service runs with; then every sampled segment must arrive. --sampling none
# traces every request and samples none: the cost of the unsampled path alone.
#
#   tools/bench/run_http_bench.sh [--connections C] [--duration-s D] [--warmup-s W] [--rounds R]
#                                 [--frameworks "httplib beast"] [--pin 0|1]
#                                 [--sampling all|default|none] [--rate RPS]
#
# --rate RPS: open loop at RPS requests a second (http_load --rate), each request timed from when
# it was due: the latency the middleware adds below saturation (requests/s then only shows that
# both servers kept up). Default: closed loop, for requests/s at saturation, where latency is
# mostly queueing (p99 rises with any loss of throughput).
# Per framework, the untraced and the traced server run side by side for the whole measurement
# and the load alternates between them: R rounds, each a slice of W + D seconds on each server,
# the untraced one first in odd rounds, the traced one in even. The table gives the median over
# rounds of each pair's overhead: on a shared VM whose speed drifts over tens of seconds,
# neighbouring slices see the same machine. --pin 1 pins the servers to SERVER_CPU (default 0), the load generator and the
# sink to CLIENT_CPU (default 1): steadier on an idle machine, but off by default, as on a shared
# one a pinned server cannot escape another process landing on its core.
# Targets: throughput overhead <= 5 %, p99 overhead <= 50 us.
set -euo pipefail

connections=16
duration_s=2
warmup_s=0.5
rounds=10
frameworks="httplib beast"
pin=0
sampling=all
rate=""
usage() {
  sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while (($#)); do
  (($# >= 2)) || usage
  case "$1" in
    --connections) connections="$2" ;;
    --duration-s) duration_s="$2" ;;
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

# slice FRAMEWORK TRACED PORT: one slice of load on PORT; appends "ROUND rps p99_us p50_us" to
# $work/FRAMEWORK.TRACED.
slice() {
  local framework="$1" traced="$2" port="$3" load errors
  load="$("${pin_client[@]}" "$work/http_load" --url "http://127.0.0.1:$port/hello" \
    --connections "$connections" --duration-s "$duration_s" --warmup-s "$warmup_s" \
    ${rate:+--rate "$rate"} || true)"
  echo "  $framework round=$round traced=$traced load=$load" >&2
  if [[ -z "$(field "$load" rps)" ]]; then
    echo "run_http_bench: no result from http_load" >&2
    return 1
  fi
  errors="$(field "$load" errors)"
  ((errors == 0)) || echo "run_http_bench: WARNING: $errors errors" >&2
  echo "$round $(field "$load" rps) $(field "$load" p99_us) $(field "$load" p50_us)" \
    >>"$work/$framework.$traced"
}

# run FRAMEWORK: both servers (and the sink) up, then the rounds of alternating slices; checks
# the traced server's counters against the sink's.
run() {
  local framework="$1" server sink requests
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
  for ((round = 1; round <= rounds; ++round)); do
    # Which server goes first alternates (untraced, traced; traced, untraced; ...), so that a
    # machine speeding up or slowing down through a round favours neither.
    if ((round % 2)); then
      slice "$framework" 0 "$plain_port" || break
      slice "$framework" 1 "$traced_port" || break
    else
      slice "$framework" 1 "$traced_port" || break
      slice "$framework" 0 "$plain_port" || break
    fi
  done
  stop plain >/dev/null
  server="$(stop traced)"
  sink="$(stop sink)"
  echo "  $framework traced server=$server sink=$sink" >&2
  requests="$(field "$server" requests)"
  if [[ "$sampling" == all && "$(field "$server" segments_sent)" != "$requests" ]] ||
    [[ "$sampling" == none && "$(field "$server" segments_sent)" != 0 ]] ||
    [[ "$(field "$server" dropped)" != 0 ]] ||
    [[ "$(field "$sink" datagrams)" != "$(field "$server" segments_sent)" ]]; then
    echo "run_http_bench: WARNING: a segment not sent, or a datagram not received" >&2
  fi
}

echo "load: $connections connections, ${rate:-closed loop}${rate:+ requests/s}, $rounds round(s)" \
  "of ${warmup_s}s warm-up + ${duration_s}s per server; sampling: $sampling;" \
  "pinning: ${pin_server[*]:-none} / ${pin_client[*]:-none}" >&2
for framework in $frameworks; do
  run "$framework" || true
done

# median FILE COLUMN FORMAT: the median of a column of numbers, or n/a when there is none.
median() {
  cut -d' ' -f"$2" "$1" | sort -g | awk -v format="$3" '{ v[NR] = $1 } END {
    if (NR == 0) print "n/a"
    else printf format "\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Overheads are medians of each round's untraced/traced pair (neighbouring slices), which
# cancels most of the drift of a shared machine; rps and p99 are medians over the paired rounds.
printf '\n%-8s %12s %12s %10s %12s %12s %12s %12s\n' framework rps_untraced rps_traced \
  rps_ovh_% p99_untr_us p99_trac_us p99_ovh_us p50_ovh_us
for framework in $frameworks; do
  pairs="$work/$framework.pairs"
  touch "$work/$framework.0" "$work/$framework.1"
  # Each line: rps untraced, rps traced, overhead %, p99 untraced, p99 traced, overhead us,
  # p50 overhead us.
  join <(sort -k1,1 "$work/$framework.0") <(sort -k1,1 "$work/$framework.1") |
    awk '{ print $2, $5, ($2 - $5) * 100 / $2, $3, $6, $6 - $3, $7 - $4 }' >"$pairs"
  printf '%-8s %12s %12s %10s %12s %12s %12s %12s\n' "$framework" "$(median "$pairs" 1 %.0f)" \
    "$(median "$pairs" 2 %.0f)" "$(median "$pairs" 3 %.1f)" "$(median "$pairs" 4 %.1f)" \
    "$(median "$pairs" 5 %.1f)" "$(median "$pairs" 6 %.1f)" "$(median "$pairs" 7 %.1f)"
done
