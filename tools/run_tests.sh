#!/usr/bin/env bash
# Runs every test (installing what is missing first). Extra arguments go to `bazel test`,
# e.g. --config=asan or --config=tsan. Ends with the line "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh || exit 1

log=$(mktemp /tmp/xraysink-test.XXXXXX)
bazel test --nocache_test_results "$@" //... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -cE '^//[^ ]+ +PASSED' "$log")
failed=$(grep -cE '^//[^ ]+ +(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)' "$log")
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi  # e.g. a build error
rm -f "$log"
echo "$passed passed, $failed failed"
exit "$status"
