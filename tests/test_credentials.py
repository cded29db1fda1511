"""Technician credentials: scrypt hashes, no default, atomic 0600 file, clear refusals."""

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from edge.credentials import CredentialError, check, load, set_user, verify_password

ROOT = Path(__file__).resolve().parent.parent


def test_no_file_means_nobody(tmp_path: Path) -> None:
    assert load(tmp_path / "none.json") == {}
    assert not check(tmp_path / "none.json", "tech", "anything-at-all")


def test_set_and_check(tmp_path: Path) -> None:
    f = tmp_path / "etc" / "technicians.json"
    set_user(f, "tech", "correct horse")
    assert check(f, "tech", "correct horse")
    assert not check(f, "tech", "correct hors")
    assert not check(f, "other", "correct horse")
    assert "correct horse" not in f.read_text()
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    set_user(f, "second", "another one")
    assert set(load(f)) == {"tech", "second"}


def test_refusals(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    with pytest.raises(CredentialError, match="at least 8"):
        set_user(f, "tech", "short")
    with pytest.raises(CredentialError, match="user name"):
        set_user(f, "Bad User", "long enough")
    assert not f.exists()
    f.write_text("{not json")
    with pytest.raises(CredentialError, match="cannot read"):
        load(f)
    assert not verify_password("x", "md5$abc")


def test_cli_reads_stdin(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    run = subprocess.run(
        [sys.executable, "-m", "edge.cli", "passwd", "--file", str(f), "tech"],
        input="a good password\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert check(f, "tech", "a good password")
    bad = subprocess.run(
        [sys.executable, "-m", "edge.cli", "passwd", "--file", str(f), "tech"],
        input="short\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert bad.returncode == 1 and "at least 8" in bad.stderr
    assert check(f, "tech", "a good password")


def test_an_unknown_user_costs_the_same_scrypt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time of a refusal does not tell whether the user name exists."""
    import hashlib

    from edge import credentials

    f = tmp_path / "technicians.json"
    set_user(f, "tech", "a good password")
    costs: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counted(password: bytes, **kw: int) -> bytes:
        costs.append((kw["n"], kw["r"], kw["p"]))
        return real(password, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(hashlib, "scrypt", counted)
    assert not check(f, "tech", "wrong password")
    assert not check(f, "nobody", "wrong password")
    assert costs == [(credentials.N, credentials.R, credentials.P)] * 2
