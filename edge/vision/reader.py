"""One reader thread per frame source, keeping only the newest frame.

The cameras (edge/vision/capture.py: V4L2, RTSP, files) and the simulator's rendered
cameras (sim/camera/source.py) are this class with their own `_read`. Rules it keeps:

- Newest frame only: `publish()` replaces a slot of one (a queue bounded at one frame);
  `latest()` returns the newest Grab or None and never waits on the reader. A slow
  consumer gets the newest frame, never a backlog of stale ones. `seq` rises by one with
  each frame, so a consumer tells a new frame from one it has seen.
- One thread per source, started once (`start()`; a second start raises). `stop()` sets the
  stop flag, which wakes `wait()`, and joins the thread for at most STOP_JOIN_S: a source
  stuck in a driver call is logged, not waited on for ever (the thread is a daemon).
  A `_read` waits with `wait()`, never time.sleep, and returns once `stopping`.
- Errors are surfaced, never the end of the reader. `_read()` is one round: open the
  source, publish until it is lost or stopped. A round that raises is logged with its
  traceback (`camera_error`) and `error` names it; a round that raised or gave no frame is
  retried after the project's backoff (edge/backoff.py, BACKOFF_MIN_S doubling to
  BACKOFF_MAX_S); one that gave frames resets the backoff and is retried at once.
  `error` is "" while frames come, else it says why they do not.
- `pace(period_s)` holds a source with no clock of its own (a file, a renderer) to its
  fps: a late frame moves the schedule on rather than bursting to catch up.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.backoff import Backoff

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
STOP_JOIN_S = 5.0

Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Grab:
    seq: int  # increases with every new frame
    t_s: float  # monotonic time it was read
    frame: Frame


class FrameReader(ABC):
    """A frame source on its own thread; subclasses read one round in `_read`."""

    def __init__(self, camera_id: str, where: str, thread_name: str) -> None:
        self.camera_id = camera_id
        self.where = where  # the source's URL: errors name it
        self.error = "not started"
        self.log = logging.getLogger(type(self).__module__)  # the source's own logger
        self.backoff = Backoff(BACKOFF_MIN_S, BACKOFF_MAX_S)  # attempts: rounds failed in a row
        self._grab: Grab | None = None
        self._seq = 0
        self._published = False  # in this round
        self._next_s = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    @abstractmethod
    def _read(self) -> None:
        """One round: open the source and publish its frames until it is lost or stopped;
        set `error` to why it ended (or could not open). Raising is allowed: it is logged."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_JOIN_S)
            if self._thread.is_alive():
                self.log.warning(
                    "camera_stuck camera=%s: the reader did not stop in %.0f s",
                    self.camera_id,
                    STOP_JOIN_S,
                )

    def latest(self) -> Grab | None:
        with self._lock:
            return self._grab

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True (at once) when stop() is called."""
        return self._stop.wait(max(0.0, seconds))

    def publish(self, frame: Frame) -> Grab:
        """The newest frame, replacing the one before (read or not)."""
        now = time.monotonic()
        with self._lock:
            self._seq += 1
            self._grab = grab = Grab(self._seq, now, frame)
        self._published = True
        self.error = ""
        return grab

    def pace(self, period_s: float) -> None:
        """Wait for the next frame's time, `period_s` after the last one's."""
        now = time.monotonic()
        self._next_s = max(self._next_s + period_s, now)
        self.wait(self._next_s - now)

    def _run(self) -> None:
        backoff = self.backoff
        while not self._stop.is_set():
            self._published = False
            self._next_s = time.monotonic()
            try:
                self._read()
                raised = False
            except Exception as exc:  # cv2.error or a bug: logged; the reader never dies of it
                self.error = f"{self.where}: {exc!r}"
                self.log.exception(
                    "camera_error camera=%s: %s; reopening", self.camera_id, self.error
                )
                raised = True
            if self._published:
                backoff.reset()
            if raised or not self._published:  # a source that gave frames is reopened at once
                self.wait(backoff.next_delay())
