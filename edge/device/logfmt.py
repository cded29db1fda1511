"""Logs for journald: one event per line, `key=value`, with the syslog priority prefix.

Under systemd (JOURNAL_STREAM is set) stdout goes to the journal, which adds
the time and host, and reads a leading `<N>` as the priority (journalctl -p
err works). Each record is one line: `level=info logger=edge.runtime
event=runtime_status plan=day ...`; the message's first word is the event
name (the project logs `event key=value ...` already), free text after it is
kept as `msg="..."`, and a traceback is folded into one `exc="..."` field so
that one event never spans several journal entries.
"""

from __future__ import annotations

import logging
import os
import re
import sys

_PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}
_PAIR = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*=\S*\Z")  # \Z: `$` passes a final newline


def _quote(value: str) -> str:
    if value and not re.search(r'[\s"=\\]', value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class KeyValueFormatter(logging.Formatter):
    def __init__(self, priority_prefix: bool) -> None:
        super().__init__()
        self.priority_prefix = priority_prefix

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        words = message.split(" ")
        fields = [f"level={record.levelname.lower()}", f"logger={record.name}"]
        if words and re.fullmatch(r"[a-z][a-z0-9_]*", words[0]):
            fields.append(f"event={words[0]}")
            rest = words[1:]
        else:
            rest = words
        pairs: list[str] = []
        text: list[str] = []
        for w in rest:
            if _PAIR.match(w) and not text:
                pairs.append(w)
            else:
                text.append(w)
        fields += pairs
        if text:
            fields.append(f"msg={_quote(' '.join(text).lstrip(':').strip())}")
        if record.exc_info:
            fields.append(f"exc={_quote(self.formatException(record.exc_info))}")
        line = " ".join(fields)
        if self.priority_prefix:
            line = f"<{_PRIORITY.get(record.levelname, 6)}>{line}"
        return line


def under_journald() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM"))


def setup(level: str, fmt: str = "auto") -> None:
    """`fmt`: "kv" (one key=value line per event), "text" (timestamped), or "auto" (kv
    under journald, text on a terminal)."""
    handler = logging.StreamHandler(sys.stdout if fmt != "text" else sys.stderr)
    use_kv = fmt == "kv" or (fmt == "auto" and under_journald())
    if use_kv:
        handler.setFormatter(KeyValueFormatter(priority_prefix=under_journald()))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
