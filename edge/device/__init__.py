"""Device-side concerns of a provisioned controller: systemd (readiness, watchdog),
journald-friendly logs, `edge status`, side-by-side releases with rollback, the
self-test (flash.sh runs it on the Pi too). The laptop's half of flash.sh (checking
the inputs, staging the files, flashing the IO board) is devtools/provision.py and
devtools/board_flash.py."""
