"""The key rollover's rules, without a broker (edge/link/keyring.py).

Rules: only the root key moves keys; a rollover's sequence must be above every one
applied; expired or other devices' rollovers are refused; only a standby key can be
activated; a revoked key is never trusted again (not after a restart either); the
device always keeps an active key; a refused rollover changes nothing. A device whose
key state was lost (or never saved) trusts no central key until a root statement
reaches it: a newer one applies, one no newer confirms (issue 20).
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edge.link import signing
from edge.link.central import signed_command
from edge.link.errors import Rejected
from edge.link.keyring import Keyring, rollover
from edge.link.session import Ack, DeviceSession
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples

NOW = 1_800_000_000_000
DEV = "dev-1"
KEYS = [signing.generate() for _ in range(4)]  # 0 active, 1 standby, 2 and 3 spares
ROOT = signing.generate()
KIDS = [signing.key_id(k.public_key()) for k in KEYS]


def _ring(d: Path) -> Keyring:
    for i, k in enumerate(KEYS[:2]):
        (d / f"k{i}.pub").write_bytes(signing.public_pem(k.public_key()))
    (d / "root.pub").write_bytes(signing.public_pem(ROOT.public_key()))
    return Keyring.load(d / "keys.json", [d / "k0.pub"], [d / "k1.pub"], d / "root.pub")


def _code(ring: Keyring, raw: bytes, device: str = DEV, now: int = NOW) -> str:
    with pytest.raises(Rejected) as err:
        ring.apply(raw, device, now)
    return err.value.code


def test_refusals_each_with_their_code(tmp_path: Path) -> None:
    ring = _ring(tmp_path)

    def ok(key: Ed25519PrivateKey, device: str) -> bytes:
        return rollover(key, 1, device, NOW, activate=KIDS[1], revoke=[KIDS[0]])

    assert _code(ring, ok(KEYS[0], DEV)) == "unknown_key"  # not root
    assert _code(ring, ok(ROOT, "dev-2")) == "wrong_device"
    assert _code(ring, ok(ROOT, DEV), now=NOW + 3_600_001) == "expired"
    assert _code(ring, rollover(ROOT, 1, DEV, NOW, activate=KIDS[2])) == "unknown_key"
    assert _code(ring, rollover(ROOT, 1, DEV, NOW, activate=None, revoke=[KIDS[0]])) == ("refused")
    assert ring.sequence == 0 and list(ring.active) == [KIDS[0]]
    assert not (tmp_path / "keys.json").exists()


def test_a_failed_save_changes_nothing(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    ring.path = tmp_path / "missing-dir/keys.json"
    assert _code(ring, rollover(ROOT, 1, DEV, NOW, activate=KIDS[1])) == "refused"
    assert ring.sequence == 0 and list(ring.active) == [KIDS[0]]


def test_a_revoked_key_stays_revoked_after_a_restart(tmp_path: Path) -> None:
    ring = _ring(tmp_path)
    new_standby = [KEYS[2].public_key()]
    ring.apply(
        rollover(ROOT, 5, DEV, NOW, activate=KIDS[1], revoke=[KIDS[0]], standby=new_standby),
        DEV,
        NOW,
    )
    again = _ring(tmp_path)  # the same provisioned files name the revoked key as active
    assert list(again.active) == [KIDS[1]] and list(again.standby) == [KIDS[2]]
    assert again.sequence == 5 and KIDS[0] in again.revoked
    # the next rollover goes on from the announced standby key
    again.apply(rollover(ROOT, 6, "*", NOW, activate=KIDS[2], revoke=[KIDS[1]]), DEV, NOW)
    assert list(again.active) == [KIDS[2]]


step = st.tuples(
    st.integers(0, 8),  # sequence
    st.sampled_from([None, *KIDS]),  # activate
    st.lists(st.sampled_from(KIDS), max_size=2, unique=True),  # revoke
    st.lists(st.integers(0, 3), max_size=2, unique=True),  # standby announced
    st.booleans(),  # signed by root (else by the active central key)
)


@settings(max_examples=examples(40))
@given(steps=st.lists(step, min_size=1, max_size=6))
@example(steps=[(1, KIDS[1], [KIDS[0]], [0], True), (2, KIDS[0], [], [], True)])  # re-trust
def test_rollover_invariants(
    steps: list[tuple[int, str | None, list[str], list[int], bool]],
) -> None:
    """Whatever arrives: the sequence only rises, the device always has an active key, a
    revoked key is never active or standby again, a refusal changes nothing, and a root
    statement no newer than the device's only confirms its keys (once, changing none)."""
    with tempfile.TemporaryDirectory() as tmp:
        ring = _ring(Path(tmp))
        revoked_ever: set[str] = set()
        for seq, activate, revoke, standby, by_root in steps:
            before = copy.copy((ring.sequence, dict(ring.active), dict(ring.standby)))
            was_confirmed = ring.confirmed
            key: Ed25519PrivateKey = ROOT if by_root else KEYS[0]
            raw = rollover(
                key,
                seq,
                DEV,
                NOW,
                activate=activate,
                revoke=revoke,
                standby=[KEYS[i].public_key() for i in standby],
            )
            try:
                ring.apply(raw, DEV, NOW)
            except Rejected:
                assert (ring.sequence, ring.active, ring.standby) == before
                continue
            assert by_root and ring.confirmed
            if seq <= before[0]:  # no newer statement: it confirms, once, and changes no key
                assert not was_confirmed
                assert (ring.sequence, ring.active, ring.standby) == before
                continue
            revoked_ever |= set(revoke)
            assert ring.active
            assert not (set(ring.active) | set(ring.standby)) & revoked_ever


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


@settings(max_examples=examples(60))
@given(kid=json_values)
@example(kid=[])  # found by tests/link/test_broker.py's fuzzing: a list is unhashable
@example(kid={})
def test_any_envelope_is_told_apart_without_error(kid: object) -> None:
    """Rule: telling a rollover from a command never raises, whatever the envelope holds."""
    with tempfile.TemporaryDirectory() as tmp:
        ring = _ring(Path(tmp))
        raw = json.dumps({"body": "{}", "kid": kid, "sig": ""}).encode()
        assert ring.is_root_signed(raw) is (kid == signing.key_id(ROOT.public_key()))


class _Memory:
    def remember_command(self, command_id: str, expires_ms: int, now_ms: int) -> bool:
        return True


def _session(ring: Keyring) -> DeviceSession:
    return DeviceSession(DEV, ring.active, {}, 0, _Memory(), keyring=ring)


def _verdict(ring: Keyring, key: Ed25519PrivateKey, now: int) -> tuple[str, str | None]:
    _, raw = signed_command(key, DEV, {"kind": "request_state"})
    out = _session(ring).on_command(raw, now)
    ack = next((a for a in out if isinstance(a, Ack) and a.status == "rejected"), None)
    return ("rejected", ack.code) if ack else ("obeyed", None)


def test_a_lost_key_state_cannot_revert_a_rollover(tmp_path: Path) -> None:
    """/var/lib/edge wiped after a rollover that revoked key 0: before, the device went
    back to the provisioned keys and obeyed the revoked key again. Now it obeys no
    central key until central's retained root statement arrives; the latest rollover
    itself moves it on again, and an older statement (nothing newer) confirms."""
    now = time.time_ns() // 1_000_000
    ring = _ring(tmp_path)
    assert ring.confirmed is False  # first boot with a root key: nothing heard yet
    assert _verdict(ring, KEYS[0], now) == ("rejected", "unknown_key")
    latest = rollover(ROOT, 5, "*", now, activate=KIDS[1], revoke=[KIDS[0]])
    ring.apply(latest, DEV, now)
    assert ring.confirmed and _verdict(ring, KEYS[1], now)[0] == "obeyed"
    (tmp_path / "keys.json").unlink()  # the data partition reflashed
    wiped = _ring(tmp_path)
    assert list(wiped.active) == [KIDS[0]] and not wiped.confirmed
    assert _verdict(wiped, KEYS[0], now) == ("rejected", "unknown_key")  # the revoked key
    plan = _session(wiped).on_plan(b"{}", now)
    assert [(a.status, a.code) for a in plan if isinstance(a, Ack)] == [("rejected", "unknown_key")]
    assert _code(wiped, rollover(KEYS[0], 6, "*", now, activate=None), now=now) == (
        "unknown_key"
    )  # central's (revoked) key cannot confirm anything
    ring_out = _session(wiped).on_command(latest, now)  # the retained statement, at connect
    assert any(isinstance(a, Ack) and a.status == "done" for a in ring_out)
    assert wiped.confirmed and list(wiped.active) == [KIDS[1]] and KIDS[0] in wiped.revoked
    assert _verdict(wiped, KEYS[0], now) == ("rejected", "unknown_key")
    assert _verdict(wiped, KEYS[1], now)[0] == "obeyed"
    assert _ring(tmp_path).confirmed  # saved: the next start is confirmed


def test_a_statement_no_newer_confirms_once_and_expiry_holds(tmp_path: Path) -> None:
    now = time.time_ns() // 1_000_000
    ring = _ring(tmp_path)
    old = rollover(ROOT, 0, "*", now - 10_000, activate=None, ttl_s=1)
    assert _code(ring, old, now=now) == "expired" and not ring.confirmed
    fleet = rollover(ROOT, 0, "*", now, activate=None, ttl_s=90 * 86400)
    assert "confirmed" in ring.apply(fleet, DEV, now)
    assert ring.confirmed and list(ring.active) == [KIDS[0]] and ring.sequence == 0
    assert _code(ring, fleet, now=now) == "replayed"  # once confirmed, an old one is a replay
    assert _ring(tmp_path).confirmed
