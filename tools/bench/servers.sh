# shellcheck shell=bash disable=SC2154 # `work` is set by the sourcing script
# Starting and stopping the benchmark's servers (http_hello, http_load --udp-sink), for the
# scripts in this directory; source it after setting `work` to a scratch directory.

# build_tools: prints the directory that holds http_load and http_hello, built with -c opt; or,
# when XRAYSINK_BENCH_BIN names one, that directory as it is, nothing built (for the tests,
# which run the scripts on the binaries of their own build).
build_tools() {
  if [[ -n "${XRAYSINK_BENCH_BIN:-}" ]]; then
    echo "$XRAYSINK_BENCH_BIN"
    return
  fi
  bazel build -c opt //tools/bench:http_load //tools/bench:http_hello >&2 || return 1
  echo "$(bazel info -c opt bazel-bin)/tools/bench"
}

# start NAME COMMAND...: runs COMMAND with its stdout on fd ${NAME}_fd (stderr to
# $work/NAME.err) and waits for its "listening on PORT" line; sets ${NAME}_pid and ${NAME}_port.
# Fails when the process exits (or stays silent for 60 s) before listening.
start() {
  local name="$1" fd line
  shift
  exec {fd}< <(exec "$@" 2>"$work/$name.err")
  printf -v "${name}_pid" '%s' "$!"
  printf -v "${name}_fd" '%s' "$fd"
  if ! read -r -t 60 -u "$fd" line || [[ "$line" != "listening on "* ]]; then
    echo "$(basename "$0" .sh): $name did not start: $(cat "$work/$name.err")" >&2
    kill -TERM "$!" 2>/dev/null || true
    wait "$!" || true
    exec {fd}<&-
    return 1
  fi
  printf -v "${name}_port" '%s' "${line#listening on }"
}

# stop NAME: SIGTERM, then prints the process's last line (its counters) and reaps it.
stop() {
  local pid_var="$1_pid" fd_var="$1_fd" fd line
  fd="${!fd_var}"
  kill -TERM "${!pid_var}"
  read -r -t 60 -u "$fd" line || line="{}"
  wait "${!pid_var}" || true
  exec {fd}<&-
  echo "$line"
}
