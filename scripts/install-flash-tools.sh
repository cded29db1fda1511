#!/usr/bin/env bash
# What tests/flash and tests/device need from Debian: shellcheck (flash.sh must be
# clean) and systemd-analyze (the unit must verify). Idempotent; apt only when missing.
set -euo pipefail
need=()
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-flash-tools: missing ${need[*]}; run this script as root (apt-get install ${need[*]})" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${need[@]}"
