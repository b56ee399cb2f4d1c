#!/usr/bin/env bash
# Installs the Debian packages the build needs, only when some are missing.
# Idempotent; quiet and quick (one dpkg query) when everything is there.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap bazel-rules-java bazel-platforms g++ pkg-config
  libabsl-dev libboost1.81-dev libcpp-httplib-dev rapidjson-dev
  libgtest-dev libgmock-dev libbenchmark-dev libspdlog-dev
)

missing=()
for package in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get update -qq >/tmp/xraysink-apt.log 2>&1 ||
   ! $sudo apt-get install -y -qq "${missing[@]}" >>/tmp/xraysink-apt.log 2>&1; then
  echo "setup: apt-get failed installing: ${missing[*]} (log: /tmp/xraysink-apt.log)" >&2
  tail -n 20 /tmp/xraysink-apt.log >&2
  exit 1
fi
