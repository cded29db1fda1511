"""A power cut at any moment (real SIGKILLs of a writer process) leaves a hi-res store
that opens with every append that returned, none half-written, within its cap."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from edge.atspm.indiana import LOG_LOSS
from edge.atspm.store import HiResStore

from tests.board.procs import REPO

CAP = 7 * 40 * 50  # fifty batches of forty events

WRITER = r"""
import sys
from edge.atspm.indiana import HiRes
from edge.atspm.store import HiResStore
s = HiResStore(sys.argv[1], max_bytes=int(sys.argv[2]))
last = s.since(0)
k = last[-1].t_ms // 1000 + 1 if last else 0
while True:
    s.append([HiRes(k * 1000 + 20 * j, 82, k % 256) for j in range(40)])
    print(f"committed {k}", flush=True)
    k += 1
"""


def test_sigkill_at_random_moments_leaves_every_returned_append(tmp_path: Path) -> None:
    db = tmp_path / "hires.sqlite"
    rng = random.Random(21)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for round_ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(CAP)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # it is writing
        assert first.startswith("committed"), first
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait(5)
        committed = [int(ln.split()[1]) for ln in [first, *rest.splitlines()] if ln]
        s = HiResStore(db, max_bytes=CAP)
        try:
            assert s._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            events = [e for e in s.since(0) if e.code != LOG_LOSS]
            batches = sorted({e.t_ms // 1000 for e in events})
            # the last reported commit is there (and at most the one in flight beyond it)
            assert committed[-1] <= batches[-1] <= committed[-1] + 1, (round_, committed[-1])
            for b in batches:  # whole batches only
                got = [e for e in events if e.t_ms // 1000 == b]
                assert [e.t_ms for e in got] == [b * 1000 + 20 * j for j in range(40)]
            assert batches == list(range(batches[0], batches[-1] + 1))  # oldest dropped first
            assert s.bytes <= CAP + 7 * 40
            total = s._db.execute("SELECT SUM(LENGTH(data)) FROM hires").fetchone()[0]
            assert total == s.bytes
        except sqlite3.Error as exc:
            raise AssertionError(f"round {round_}: the store did not open cleanly: {exc}") from exc
        finally:
            s.close()
