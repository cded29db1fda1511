"""Technician credentials: scrypt hashes, no default, atomic 0600 file, clear refusals."""

import grp
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from edge import credentials
from edge.credentials import (
    CredentialError,
    FileOwner,
    check,
    file_owner,
    hash_password,
    load,
    set_user,
    verify_password,
    weak_users,
)

ROOT = Path(__file__).resolve().parent.parent
CHEAP = 2**10  # test files: the format and the rules, not the cost (one test has the cost)


def test_no_file_means_nobody(tmp_path: Path) -> None:
    assert load(tmp_path / "none.json") == {}
    assert not check(tmp_path / "none.json", "tech", "anything-at-all")


def test_set_and_check(tmp_path: Path) -> None:
    f = tmp_path / "etc" / "technicians.json"
    set_user(f, "tech", "correct horse", n=CHEAP)
    assert check(f, "tech", "correct horse")
    assert not check(f, "tech", "correct hors")
    assert not check(f, "other", "correct horse")
    assert "correct horse" not in f.read_text()
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    set_user(f, "second", "another one", n=CHEAP)
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

    f = tmp_path / "technicians.json"
    set_user(f, "tech", "a good password", n=CHEAP)
    costs: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counted(password: bytes, **kw: int) -> bytes:
        costs.append((kw["n"], kw["r"], kw["p"]))
        return real(password, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(hashlib, "scrypt", counted)
    assert not check(f, "tech", "wrong password")
    assert not check(f, "nobody", "wrong password")
    # the dummy hash costs what the file's own do (here an older, cheaper file's)
    assert costs == [(CHEAP, credentials.R, credentials.P)] * 2
    costs.clear()
    assert not check(tmp_path / "none.json", "nobody", "wrong password")
    assert costs == [(credentials.N, credentials.R, credentials.P)]


def test_new_hashes_cost_what_owasp_recommends_and_old_ones_still_verify(
    tmp_path: Path,
) -> None:
    """Issue 20: N=2^14 was below OWASP's N=2^17; a file from before still works, and
    its users are named as weak (the runtime warns; `edge passwd` rehashes)."""
    new = hash_password("a good password")
    assert new.split("$")[1:4] == [str(2**17), "8", "1"]
    assert verify_password("a good password", new)
    old = hash_password("an old password", n=2**14)
    assert verify_password("an old password", old)
    assert not verify_password("an old passworD", old)
    assert weak_users({"new": new, "old": old, "junk": "md5$x"}) == ["junk", "old"]
    # a stored cost beyond the memory cap is refused, never computed
    assert not verify_password("x", f"scrypt${2**22}$8$1${'00' * 16}${'00' * 32}")


def test_the_file_is_640_to_the_service_group_where_it_exists(tmp_path: Path) -> None:
    """Issue 20: on a device `edge passwd` wrote 600 root:root and the service (group
    edge) could not read it: every action was refused. 640 owner:group where the group
    exists; 600 where it does not. (Here the group is the test user's own.)"""
    mine = grp.getgrgid(os.getgid()).gr_name
    owner = file_owner(mine)
    assert owner == FileOwner(0o640, os.geteuid(), os.getgid())
    assert file_owner("no-such-group-edge-test") == FileOwner(0o600)
    f = tmp_path / "technicians.json"
    set_user(f, "tech", "a good password", owner=owner, n=CHEAP)
    st = f.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, os.getgid())
    assert check(f, "tech", "a good password")
    if os.geteuid() != 0:  # another's group: a clear refusal, the old file untouched
        with pytest.raises(CredentialError, match="run edge passwd as root"):
            set_user(f, "tech", "other password", owner=FileOwner(0o640, 0, 0), n=CHEAP)
        assert check(f, "tech", "a good password")
        assert [p.name for p in tmp_path.iterdir()] == ["technicians.json"]
