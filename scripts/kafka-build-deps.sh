#!/usr/bin/env bash
# Installs what the `kafka` feature needs to build librdkafka from source (rdkafka's
# cmake-build): cmake and the libcurl headers. Idempotent: does nothing when both are present;
# otherwise installs them with apt-get, non-interactively (as root, or through sudo without a
# password prompt).
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v curl-config >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "kafka-build-deps.sh: install ${missing[*]} (cmake and the libcurl development headers) to build librdkafka" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "kafka-build-deps.sh: ${missing[*]} missing and no root: run 'sudo apt-get install -y ${missing[*]}'" >&2
  exit 1
fi
echo "kafka-build-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A stale package index fails the install (a dependency's version is gone): refresh and retry.
if ! "${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null; then
  "${sudo[@]}" apt-get update -q >/dev/null
  "${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null
fi
