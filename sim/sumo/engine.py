"""Find SUMO and start it: libsumo in-process, or traci with a `sumo` child process.

libsumo is the default (no socket, several times faster). traci is the
fallback when libsumo cannot be imported, or on request (`use_traci`), and the
only choice that survives a crashing SUMO: a segfault in libsumo takes the
Python process with it, one in a traci child is an exception here.
Both expose the same module-level API, so the runner sees one `Any` handle.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from pathlib import Path
from typing import Any

from sim.sumo.errors import SimError

_labels = itertools.count()


def sumo_home() -> Path | None:
    """SUMO_HOME from the eclipse-sumo wheel, the environment, or None."""
    try:
        import sumo

        return Path(sumo.SUMO_HOME)
    except ImportError:
        env = os.environ.get("SUMO_HOME")
        return Path(env) if env else None


def binary(name: str) -> str:
    """Path of a SUMO program (sumo, netconvert); SimError naming the fix when missing."""
    home = sumo_home()
    if home is not None:
        candidate = home / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise SimError(
        f"SUMO program {name!r} not found: install the simulator extras "
        "(pip install -e '.[sim]', which brings eclipse-sumo) or set SUMO_HOME"
    )


def start(args: list[str], use_traci: bool = False) -> Any:
    """Start a simulation with sumo command-line `args`; return the libsumo/traci module."""
    if not use_traci:
        try:
            import libsumo
        except ImportError:
            use_traci = True
        else:
            try:
                libsumo.start([binary("sumo"), *args])
            except SimError:
                raise
            except Exception as exc:
                raise SimError(f"SUMO did not start: {exc}") from None
            return libsumo
    try:
        import traci
    except ImportError:
        raise SimError("neither libsumo nor traci is installed: pip install -e '.[sim]'") from None
    label = f"edge-sim-{os.getpid()}-{next(_labels)}"
    try:
        traci.start([binary("sumo"), *args], label=label, numRetries=20)
    except SimError:
        raise
    except Exception as exc:
        raise SimError(f"SUMO did not start: {exc}") from None
    return traci


def close(sim: Any) -> None:
    with contextlib.suppress(Exception):
        sim.close()
