"""One camera's zones and count lines replaced in the site file: checked, then written atomically.

The rules:

- Only the `zones` and `lines` of one `[[cameras]]` entry already in the file change;
  nothing else in the file does. The edit is made with tomlkit on the file's own text,
  so comments, key order and layout elsewhere stay as the technician wrote them. A zone
  or line that keeps its id is changed in place (its comments stay) and only the keys
  whose value changes are rewritten; removed ones go, new ones are appended. A list
  written inline (`zones = [{...}]`, as `edge sim init` writes it) becomes
  `[[cameras.zones]]` tables.
- The edited text is checked whole by edge.config (`config_from_dict`, what `edge check`
  and `edge run` load), so every rule of the site file applies: points inside the frame,
  a queue zone of 4 corners with length_m, a detector that exists, is no push button and
  is driven by one zone, unique ids, ... Problems: LayoutProblems, nothing written.
- It is written only if the file on disk is still the one the editor was shown (its
  sha256), can be written, and holds, besides this camera's zones and lines, what the
  device runs (a file edited by hand since `edge run` started is never half applied):
  otherwise LayoutConflict, nothing written.
- Atomic: a temporary file in the same directory (of the real file, through a
  symlink), fsync, os.replace, fsync of the directory; the file's mode (and owner,
  where the process may set it) carried over. A crash leaves the old file or the new one.

Blocking (file I/O, parsing, the checks): call it off the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, InlineTable, Table

from edge.config import ConfigError, SiteConfig, config_from_dict
from edge.vision.config import Camera, LineCfg, Vision, ZoneCfg


class LayoutProblems(Exception):
    """The edited file fails the site checks; `problems` names each (zone, line, what)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class LayoutConflict(Exception):
    """The file cannot take the edit now (changed on disk, read-only, not what runs)."""


@dataclass(frozen=True, slots=True)
class Saved:
    config: SiteConfig  # the whole file as now written, as edge.config loads it
    camera: Camera  # the edited camera, to apply to the running processing
    site_hash: str  # sha256 of the file as now written


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_hash(path: str | Path) -> str:
    return file_hash(Path(path).read_bytes())


# -- the TOML edit (pure) ----------------------------------------------------------------


def _number(x: float) -> int | float:
    """A coordinate as the file shows it: whole pixels as integers, else 2 decimals."""
    r = round(float(x), 2)
    return int(r) if r.is_integer() else r


def _value(name: str, value: Any) -> Any:
    if name in ("polygon", "points"):
        return [[_number(x), _number(y)] for x, y in value]
    return value


def _rows(items: Sequence[ZoneCfg | LineCfg]) -> list[dict[str, Any]]:
    """Each zone or line as the keys a file needs: defaults and None left out."""
    out = []
    for item in items:
        fields = type(item).model_fields
        row = {}
        for name, field in fields.items():
            v = getattr(item, name)
            if v is None or (not field.is_required() and v == field.default):
                continue
            row[name] = _value(name, v)
        out.append(row)
    return out


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def _update(table: Table | InlineTable, item: ZoneCfg | LineCfg) -> None:
    """Rewrite only the keys whose effective value changes (defaults count as written)."""
    for name, field in type(item).model_fields.items():
        new = getattr(item, name)
        default = None if field.is_required() else field.default
        old = _plain(table[name]) if name in table else default
        if new is None:
            if name in table:
                del table[name]
        elif old != _value(name, new):
            table[name] = _value(name, new)


def _new_table(row: dict[str, Any]) -> Table:
    t = tomlkit.table()
    for k, v in row.items():
        t[k] = v
    t.add(tomlkit.nl())
    return t


def _replace(cam: Table | InlineTable, key: str, items: Sequence[ZoneCfg | LineCfg]) -> None:
    current = cam.get(key)
    if isinstance(current, AoT):
        # Each item takes the first table of its id not yet taken, edited in place (its
        # comments stay); an item without one gets a new table. Faithful to the request
        # even with a repeated id (the checks then name it), and in its order.
        free: dict[object, list[Table]] = {}
        for table in current:
            free.setdefault(_plain(table.get("id")), []).append(table)
        wanted: list[Table] = []
        for item in items:
            table = free[item.id].pop(0) if free.get(item.id) else None
            if table is None:
                table = _new_table(_rows([item])[0])
            else:
                _update(table, item)
            wanted.append(table)
        if not wanted:
            del cam[key]
            return
        taken = {id(t) for t in wanted}
        for table in [t for t in current if id(t) not in taken]:
            current.remove(table)
        have = list(current)
        if [id(t) for t in have] == [id(t) for t in wanted[: len(have)]]:
            rest = wanted[len(have) :]  # the usual edit: the same order, new ones at the end
        else:
            for table in have:
                current.remove(table)
            rest = wanted
        for table in rest:
            if len(current) and not current[-1].as_string().endswith("\n\n"):
                current[-1].add(tomlkit.nl())  # a blank line before the next table
            current.append(table)
        return
    if current is not None:
        del cam[key]
    if not items:
        return
    if isinstance(cam, InlineTable):  # `cameras = [{...}]`: stays inline
        cam[key] = _rows(items)
        return
    aot = tomlkit.aot()
    for row in _rows(items):
        aot.append(_new_table(row))
    cam[key] = aot


def edit_text(text: str, camera_id: str, zones: Sequence[ZoneCfg], lines: Sequence[LineCfg]) -> str:
    """The site file's text with camera `camera_id`'s zones and lines replaced."""
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise LayoutConflict(
            f"the site file is not valid TOML ({exc}); nothing was saved"
        ) from None
    cams = doc.get("cameras")
    found = None
    if isinstance(cams, list):
        for cam in cams:
            if isinstance(cam, Table | InlineTable) and _plain(cam.get("id")) == camera_id:
                found = cam
                break
    if found is None:
        raise LayoutConflict(
            f"camera {camera_id} is not in the site file (its [[cameras]] entry is gone); "
            "nothing was saved"
        )
    _replace(found, "zones", zones)
    _replace(found, "lines", lines)
    return tomlkit.dumps(doc)


# -- checks against the file and what runs -------------------------------------------------


def _without_layout(vision: Vision | None, camera_id: str) -> Vision | None:
    if vision is None:
        return None
    cams = tuple(replace(c, zones=(), lines=()) if c.id == camera_id else c for c in vision.cameras)
    return replace(vision, cameras=cams)


def differs_from_running(new: SiteConfig, running: SiteConfig, camera_id: str) -> str | None:
    """What of `new` other than the camera's zones and lines is not what runs, or None."""
    if new.site != running.site:
        return "the intersection (phases, detectors, timing, ...)"
    if new.schedule != running.schedule:
        return "the schedule"
    a, b = _without_layout(new.vision, camera_id), _without_layout(running.vision, camera_id)
    if a != b:
        return "the [vision] settings or the cameras"
    return None


def _read_only(path: Path, st: os.stat_result) -> str | None:
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(
        path, os.W_OK
    ):
        return f"the site file {path} is read-only (mode {stat.S_IMODE(st.st_mode):04o})"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return (
            f"the site file's directory {path.parent} is not writable (the new file is "
            "written beside the old one, then renamed over it)"
        )
    return None


def _write_atomic(path: Path, data: bytes, like: os.stat_result) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IMODE(like.st_mode))
        if (like.st_uid, like.st_gid) != (os.getuid(), os.getgid()):
            with contextlib.suppress(OSError):  # only root may; the mode is kept regardless
                os.chown(tmp, like.st_uid, like.st_gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)  # the rename itself survives a power cut
    finally:
        os.close(dfd)


def save_layout(
    path: str | Path,
    expected_hash: str,
    camera_id: str,
    zones: Sequence[ZoneCfg],
    lines: Sequence[LineCfg],
    running: SiteConfig,
) -> Saved:
    """Check the edit and write it; LayoutConflict or LayoutProblems with nothing written."""
    given = Path(path)
    real = Path(os.path.realpath(given))
    try:
        data = real.read_bytes()
        st = real.stat()
    except OSError as exc:
        raise LayoutConflict(
            f"cannot read the site file {given}: {exc.strerror or exc}; nothing was saved"
        ) from None
    if file_hash(data) != expected_hash:
        raise LayoutConflict(
            f"the site file {given} has changed on disk since this layout was loaded; nothing "
            "was saved: load the layout again and redo the edit"
        )
    ro = _read_only(real, st)
    if ro is not None:
        raise LayoutConflict(f"{ro}; nothing was saved")
    if not zones:
        raise LayoutProblems([f"camera {camera_id}: zones: a camera needs at least one zone"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LayoutConflict(f"the site file is not UTF-8 ({exc}); nothing was saved") from None
    new_text = edit_text(text, camera_id, zones, lines)
    try:
        config = config_from_dict(tomllib.loads(new_text), str(given), base=given.resolve().parent)
    except ConfigError as exc:
        raise LayoutProblems(exc.problems) from None
    except tomllib.TOMLDecodeError as exc:  # tomlkit wrote what tomllib cannot read: a bug
        raise LayoutProblems([f"the edited file is not valid TOML: {exc}"]) from None
    other = differs_from_running(config, running, camera_id)
    if other is not None:
        raise LayoutConflict(
            f"the site file {given} differs from what this device runs in {other}: it was "
            "edited since `edge run` started; nothing was saved (restart the runtime to run "
            "the file as it is, then edit the zones)"
        )
    assert config.vision is not None  # the camera is in it
    camera = next(c for c in config.vision.cameras if c.id == camera_id)
    new = new_text.encode("utf-8")
    try:
        _write_atomic(real, new, st)
    except OSError as exc:
        raise LayoutConflict(
            f"cannot write the site file {given}: {exc.strerror or exc}; nothing was saved"
        ) from None
    return Saved(config, camera, file_hash(new))
