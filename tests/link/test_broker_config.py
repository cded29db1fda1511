"""The device file's broker section: a cluster's other nodes and the protocol level."""

from __future__ import annotations

from pathlib import Path

import pytest
from edge.link.client import BrokerConfig
from edge.link.config import load_device_config

HEAD = '[device]\nid = "d1"\nsite = "s.toml"\nstore = "d.db"\ntrusted_keys = ["k.pub"]\n'


def _load(tmp_path: Path, broker: str) -> BrokerConfig:
    toml = tmp_path / "device.toml"
    toml.write_text(HEAD + '[broker]\nhost = "10.0.0.1"\nport = 8883\n' + broker)
    return load_device_config(toml).broker


def test_alternates_and_protocol_are_read(tmp_path: Path) -> None:
    b = _load(tmp_path, 'alternates = ["10.0.0.2:8883", "n3.city:8884"]\nprotocol = "3.1.1"\n')
    assert b.endpoints() == (("10.0.0.1", 8883), ("10.0.0.2", 8883), ("n3.city", 8884))
    assert b.protocol == "3.1.1"
    assert _load(tmp_path, "").protocol == "auto" and _load(tmp_path, "").alternates == ()


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('alternates = ["10.0.0.2:70000"]', r"alternates: '10\.0\.0\.2:70000': the port"),
        ('alternates = ["10.0.0.2"]', r"broker\.alternates\.0: String should match"),
        ('protocol = "4"', r"broker\.protocol: Input should be 'auto', '5' or '3\.1\.1'"),
    ],
)
def test_bad_broker_entries_are_named(tmp_path: Path, line: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        _load(tmp_path, line + "\n")


def test_an_unknown_protocol_level_is_refused_in_code_too() -> None:
    with pytest.raises(ValueError, match=r"broker protocol '4': one of auto, 5, 3\.1\.1"):
        BrokerConfig("h", 1, protocol="4")


def test_an_enrolment_token_needs_tls_and_a_place_for_the_key(tmp_path: Path) -> None:
    """No enrolment over plain MQTT (the bootstrap connection checks the broker against
    the fleet CA) and none without renew_dir (where the device keeps the key it makes)."""
    with pytest.raises(ValueError, match="enrol_token needs cafile"):
        _load(tmp_path, 'enrol_token = "t"\nrenew_dir = "tls"\n')
    with pytest.raises(ValueError, match="enrol_token needs cafile"):
        _load(tmp_path, 'enrol_token = "t"\ncafile = "ca.crt"\n')
    toml = tmp_path / "device.toml"
    toml.write_text(
        HEAD + '[broker]\nhost = "b"\nport = 8883\ncafile = "ca.crt"\nrenew_dir = "tls"\n'
        'enrol_token = "t"\nenrol_port = 9884\n'
    )
    cfg = load_device_config(toml)
    assert cfg.enrol_port == 9884 and cfg.enrol_token == tmp_path / "t"
    assert not cfg.broker.has_client_cert()
