"""A power cut at any moment (real SIGKILLs of a writer process) leaves a store that
opens, with the last committed plan active or pending as it was, and nothing half-written."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.store import Store

from tests.board.procs import REPO

WRITER = r"""
import json, sys, hashlib
from edge.store import Store
s = Store(sys.argv[1], max_spool_rows=300, max_event_log_rows=200)
v = s.plan_high_water()
while True:
    v += 1
    env = (f"plan-{v}|" * 400).encode()
    s.save_plan(v, hashlib.sha256(env).hexdigest(), env, v)
    if v % 2 == 0:
        s.mark_plan_applied(v, v)
    s.spool_extend([("events", json.dumps({"v": v, "pad": "x" * 200}))] * 5, v)
    s.log_events([(v, "plan_saved", f"v{v}", "y" * 100)] * 7)
    print(f"committed {v} applied {v % 2 == 0}", flush=True)
"""


def test_sigkill_at_random_moments_leaves_the_last_commit(tmp_path: Path) -> None:
    db = tmp_path / "edge.db"
    rng = random.Random(8)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    last_applied = 0
    for round_ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # it is writing
        assert first.startswith("committed"), first
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait(5)
        lines = [first, *rest.splitlines()]
        committed = [int(ln.split()[1]) for ln in lines if ln.startswith("committed")]
        applied = [int(ln.split()[1]) for ln in lines if ln.endswith("applied True")]
        last_applied = max([last_applied, *applied])

        s = Store(db, max_spool_rows=300, max_event_log_rows=200)
        try:
            assert s.integrity_check() == "ok"
            hw = s.plan_high_water()
            # everything reported committed is there; at most the one in flight beyond it
            assert committed[-1] <= hw <= committed[-1] + 1, (round_, committed[-1], hw)
            latest = s.latest_plan()
            assert latest is not None and latest.version == hw  # plan and mark: one commit
            assert latest.envelope == (f"plan-{hw}|" * 400).encode()
            assert latest.digest == hashlib.sha256(latest.envelope).hexdigest()
            active = s.active_plan()
            assert active is not None and active.version >= last_applied
            assert active.applied_ms == active.version
            pending = s.pending_plan()
            assert pending is None or (
                pending.version > active.version and pending.applied_ms is None
            )
            rows = s.spool_pending(limit=1000)
            assert 0 < len(rows) <= 300 and len(rows) % 5 == 0  # whole batches only
            assert all(json.loads(r.body)["pad"] == "x" * 200 for r in rows)
            events = s.recent_events(limit=1000)
            assert 0 < len(events) <= 200  # bounded, oldest rotated out
            assert all(e[3] == "y" * 100 for e in events)
        finally:
            s.close()
