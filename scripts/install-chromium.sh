#!/usr/bin/env bash
# The technician-page tests (tests/web) drive Debian's Chromium with Playwright
# (executable_path=/usr/bin/chromium); Playwright never downloads a browser here.
# This only makes sure the binary is there. Idempotent: does nothing when
# /usr/bin/chromium exists.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-chromium: /usr/bin/chromium is missing; run this script as root (apt-get install chromium)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends chromium fonts-dejavu-core
[ -x /usr/bin/chromium ] || { echo "install-chromium: chromium installed but /usr/bin/chromium is missing" >&2; exit 1; }
