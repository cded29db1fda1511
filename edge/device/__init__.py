"""Device-side concerns of a provisioned controller: systemd (readiness, watchdog),
journald-friendly logs, `edge status`, side-by-side releases with rollback, the
provisioning helpers flash.sh calls and its self-test."""
