#!/usr/bin/env bash
# Instructions and instruction-cache misses per request of the hello-world server (http_hello),
# untraced and traced, counted by valgrind's callgrind (its cache simulation: 32 KB L1i): counts
# that, unlike time, do not move with this VM's speed, so a change of a few hundred instructions
# per request shows. Only the server's user-space work is counted (not the kernel's).
#
#   tools/bench/request_instructions.sh [--framework beast|httplib] [--sampling none|default|all]
#                                       [--requests N] [--keep DIR]
#
# Each server runs under callgrind, takes N requests of warm-up from http_load (4 keep-alive
# connections), then N more with the counters zeroed before and dumped after
# (callgrind_control): the figures are those N requests' alone, start-up and exit left out. The
# traced server sends to a UDP sink (http_load --udp-sink). Needs valgrind (on every machine of
# this project's kind; apt-get install valgrind otherwise). Slow: about 50x the server's normal
# time per request. --keep DIR leaves the two dumps there (untraced.out, traced.out) for
# callgrind_annotate: `callgrind_annotate --inclusive=no DIR/traced.out` says where they go.
set -euo pipefail

framework=beast
sampling=none
requests=20000
keep=""
usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while (($#)); do
  (($# >= 2)) || usage
  case "$1" in
    --framework) framework="$2" ;;
    --sampling) sampling="$2" ;;
    --requests) requests="$2" ;;
    --keep) keep="$2" ;;
    *) usage ;;
  esac
  shift 2
done
bad() {
  echo "request_instructions: bad $1 '$2': expected $3" >&2
  exit 2
}
[[ "$framework" == beast || "$framework" == httplib ]] || bad --framework "$framework" "beast or httplib"
[[ "$sampling" =~ ^(all|default|none)$ ]] || bad --sampling "$sampling" "all, default or none"
[[ "$requests" =~ ^[1-9][0-9]*$ ]] || bad --requests "$requests" "an integer >= 1"
if [[ -n "$keep" ]]; then
  mkdir -p "$keep" || bad --keep "$keep" "a directory it can create"
  keep="$(cd "$keep" && pwd)"
fi
for tool in valgrind callgrind_control; do
  command -v "$tool" >/dev/null || {
    echo "request_instructions: $tool not found (apt-get install valgrind)" >&2
    exit 2
  }
done

cd "$(dirname "$0")/../.."
# shellcheck source=tools/bench/servers.sh
source tools/bench/servers.sh
bin="$(build_tools)"
work="$(mktemp -d)"
sink_pid="" server_pid="" sink_port="" server_port="" # set by start()
cleanup() {
  # shellcheck disable=SC2086 # the empty ones vanish
  kill -TERM $server_pid $sink_pid 2>/dev/null || true  # none left: nothing to kill
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# Private copies: other builds in this workspace may replace bazel-bin's files while we run.
cp "$bin/http_load" "$bin/http_hello" "$work/"

load() {
  "$work/http_load" --url "http://127.0.0.1:$server_port/hello" --connections 4 \
    --duration-s 3600 --warmup-s 0 --requests "$requests" >/dev/null
}

# control ARGS...: callgrind_control, quiet unless it fails.
control() {
  local out
  out="$(callgrind_control "$@" 2>&1)" || {
    echo "request_instructions: callgrind_control $* failed: $out" >&2
    exit 1
  }
}

# measure TRACED: prints "instructions I1_misses", both per request.
measure() {
  local traced="$1" dump
  start server valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$work/cg.%p" \
    "$work/http_hello" --framework "$framework" --traced "$traced" --port 0 \
    --daemon "127.0.0.1:$sink_port" --sampling "$sampling" || exit 1
  load
  control --zero "$server_pid"
  load
  control --dump=measured "$server_pid"
  stop server >/dev/null
  server_pid=""
  dump="$(grep -l '^desc: Trigger: dump measured' "$work"/cg.* 2>/dev/null | head -n 1 || true)"
  [[ -n "$dump" ]] || {
    echo "request_instructions: callgrind wrote no dump" >&2
    exit 1
  }
  awk -v n="$requests" '
    /^events:/ { for (i = 2; i <= NF; ++i) column[$i] = i - 1 }
    /^summary:/ { printf "%.0f %.1f\n", $(column["Ir"] + 1) / n, $(column["I1mr"] + 1) / n }
  ' "$dump"
  if [[ -n "$keep" ]]; then
    local name=untraced
    ((traced)) && name=traced
    cp "$dump" "$keep/$name.out"
  fi
  rm -f "$work"/cg.*
}

start sink "$work/http_load" --udp-sink || exit 1
echo "$framework: $requests requests after $requests of warm-up, traced at --sampling $sampling" >&2
read -r plain_ir plain_i1 <<<"$(measure 0)"
read -r traced_ir traced_i1 <<<"$(measure 1)"
stop sink >/dev/null
sink_pid=""
[[ -n "$plain_ir" && -n "$traced_ir" ]] || {
  echo "request_instructions: no counts read from callgrind" >&2
  exit 1
}
awk -v pi="$plain_ir" -v p1="$plain_i1" -v ti="$traced_ir" -v t1="$traced_i1" 'BEGIN {
  printf "untraced: %d instructions/request, %.1f I1 misses/request\n", pi, p1
  printf "traced:   %d instructions/request, %.1f I1 misses/request\n", ti, t1
  printf "added:    %+d instructions (%+.1f %%), %+.1f I1 misses per request\n", ti - pi, (ti - pi) * 100 / pi, t1 - p1
}'
