"""`edge central ...` against a real broker and a device runtime process."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from edge.cli import main
from edge.link import signing
from edge.link.mosquitto import Mosquitto

from tests.link.harness import SITE, Keys, device_config, write_device_toml
from tests.link.test_sigkill import start

PLANS = """
default_plan = "day"

[plans.day.defaults]
min_green_s = 6
passage_s = 2.5
max_green_s = 33
yellow_s = 3.5
red_clear_s = 1.5
walk_s = 7
ped_clear_s = 14

[plans.day.phase]
2 = { min_green_s = 10, max_green_s = 45, yellow_s = 4.0, recall = ["min"] }
6 = { min_green_s = 10, max_green_s = 45, yellow_s = 4.0, recall = ["min"] }

[[detectors]]
id = 5
delay_s = 1.0
"""


def test_central_tool(broker: Mosquitto, tmp_path: Path, capsys: Any) -> None:
    assert main(["central", "keygen", str(tmp_path / "central")]) == 0
    key = tmp_path / "central.key"
    assert signing.load_private(key)
    assert "key id" in capsys.readouterr().out
    plans = tmp_path / "plans.toml"
    plans.write_text(PLANS)
    # sign, checked against the site first: a bad bundle never leaves central
    bad = tmp_path / "bad.toml"
    bad.write_text(PLANS.replace("min_green_s = 6\n", "min_green_s = 2\n"))
    base = ["--key", str(key), "--device", "dev-c", "--version", "1", "--site", str(SITE)]
    assert main(["central", "sign", *base, str(plans)]) == 0
    envelope = json.loads(capsys.readouterr().out)
    assert set(envelope) == {"body", "kid", "sig"}
    with pytest.raises(SystemExit):
        main(["central", "sign", *base, str(bad)])
    assert "min green 2 s is below the site's 5 s minimum" in capsys.readouterr().err

    keys = Keys(signing.load_private(key), tmp_path / "central.pub", signing.generate())
    cfg = device_config(broker, tmp_path / "dev", "dev-c", keys)
    write_device_toml(cfg, tmp_path / "device.toml")
    proc = start(tmp_path / "device.toml", tmp_path / "device.log")
    c = broker.client_config("central")
    conn = ["--port", str(c.port), "--cafile", str(c.cafile), "--cert", str(c.certfile)]
    conn += ["--client-key", str(c.keyfile)]
    try:
        time.sleep(2.0)
        assert main(["central", "push", *base, *conn, str(plans)]) == 0
        assert "dev-c: plan v1 accepted" in capsys.readouterr().out
        assert main(["central", "push", *base, *conn, str(plans)]) == 1  # same version again
        assert "replayed" in capsys.readouterr().out
        dev = ["--key", str(key), "--device", "dev-c"]
        prio = ["--approach", "W", "--eta", "20", "--vehicle", "E-1"]
        assert main(["central", "priority", *conn, *dev, *prio]) == 0
        assert main(["central", "cmd", *conn, *dev, '{"kind": "request_state"}']) == 0
        out = capsys.readouterr().out
        assert (
            '"plan_version": 1' in out or '"plan_pending": 1' in out
        ) and '"vehicle_id": "E-1"' in out
        assert main(["central", "fleet", *conn, "--json"]) == 0
        fleet = json.loads(capsys.readouterr().out)
        assert fleet["dev-c"]["state"] == "online" and len(fleet["dev-c"]["config_hash"]) == 16
        assert main(["central", "watch", *conn, "--device", "dev-c", "--duration", "1.5"]) == 0
        assert "dev-c status  {" in capsys.readouterr().out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert main(["central", "fleet", *conn]) == 0
    assert "dev-c" in capsys.readouterr().out


def test_key_rollover_from_the_command_line(broker: Mosquitto, tmp_path: Path, capsys: Any) -> None:
    """Signed offline with the root key, sent by central: the device moves to the standby key."""
    for name in ("central", "standby", "root"):
        assert main(["central", "keygen", str(tmp_path / name)]) == 0
    capsys.readouterr()
    keys = Keys(
        signing.load_private(tmp_path / "central.key"), tmp_path / "central.pub", signing.generate()
    )
    cfg = device_config(
        broker,
        tmp_path / "dev",
        "dev-r",
        keys,
        standby_keys=(tmp_path / "standby.pub",),
        root_key=tmp_path / "root.pub",
    )
    write_device_toml(cfg, tmp_path / "device.toml")
    sign = ["central", "rollover", "--root-key", str(tmp_path / "root.key"), "--sequence", "1"]
    sign += ["--device", "*", "--activate", str(tmp_path / "standby.pub")]
    assert main([*sign, "--revoke", str(tmp_path / "central.pub")]) == 0
    message = tmp_path / "rollover.json"
    message.write_text(capsys.readouterr().out)
    c = broker.client_config("central")
    conn = ["--port", str(c.port), "--cafile", str(c.cafile), "--cert", str(c.certfile)]
    conn += ["--client-key", str(c.keyfile), "--device", "dev-r"]
    beat = '{"kind": "heartbeat"}'

    def heartbeat(key: str) -> int:
        return main(["central", "cmd", *conn, "--key", str(tmp_path / key), beat])

    proc = start(tmp_path / "device.toml", tmp_path / "device.log")
    try:
        deadline = time.monotonic() + 30
        while heartbeat("central.key") == 2 and time.monotonic() < deadline:
            pass  # no ack yet: the device is still connecting (commands are not retained)
        # the device has no key state yet: it obeys no central key before a root statement
        assert "key state was lost" in capsys.readouterr().out
        assert main(["central", "send", *conn, "--retain", str(message)]) == 0
        assert "command done" in capsys.readouterr().out
        assert heartbeat("central.key") == 1
        assert "unknown_key" in capsys.readouterr().out
        assert heartbeat("standby.key") == 0
        assert main(["central", "send", *conn, str(message)]) == 1
        assert "replayed" in capsys.readouterr().out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
