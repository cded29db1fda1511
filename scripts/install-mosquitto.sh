#!/usr/bin/env bash
# The link tests and `edge bench link` run their own Mosquitto processes (on free
# loopback ports, with generated configs); this only makes sure the binary is
# there. Idempotent: does nothing when mosquitto is installed. Never starts or
# relies on the system service.
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-mosquitto: mosquitto is missing; run this script as root (apt-get install mosquitto)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
# policy-rc.d 101: the package must not start (or enable) the system broker here.
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created=1
fi
apt-get install -y --no-install-recommends mosquitto || { [ $created = 1 ] && rm -f "$policy"; exit 1; }
[ $created = 1 ] && rm -f "$policy"
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]
