#!/usr/bin/env bash
# What `make test` starts for real, from Debian, installed only when missing and
# with one `apt-get update` for all of them:
#   mosquitto: the link tests run their own brokers (never the system service)
#   nats-server: the fleet's clustered broker (3 nodes started by edge.link.nats)
#   the shellcheck linter: flash.sh must be clean
#   systemd: systemd-analyze verifies the units flash.sh installs
#   chromium: the technician-page tests drive /usr/bin/chromium (Playwright
#     never downloads a browser here)
#   snmp (net-snmp's snmpget/snmpwalk/snmpset): tests/ntcip query the NTCIP agent
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -x /usr/bin/chromium ] || need+=(chromium fonts-dejavu-core)
command -v snmpget >/dev/null 2>&1 || need+=(snmp)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-test-tools: missing ${need[*]}; run this script as root (apt-get install ${need[*]})" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: the packages must not start their system services here.
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created=1
fi
trap 'if [ $created = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get -o DPkg::Lock::Timeout=600 update
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}"
# policy-rc.d keeps mosquitto from starting now, but its postinst still enables the
# service for every boot (a systemd link and SysV rc links). The tests start their
# own brokers: disable the one this script installed. systemctl disable works on
# the files alone (no running systemd needed) and also turns the rc links to K
# links; without systemd, update-rc.d does that part. A later upgrade keeps it off.
for svc in mosquitto nats-server; do
    if [[ " ${need[*]} " == *" $svc "* ]]; then
        if command -v systemctl >/dev/null; then
            systemctl --quiet disable "$svc.service"
        elif [ -e "/etc/init.d/$svc" ]; then
            update-rc.d "$svc" disable
        fi
    fi
done
