"""Text a proxy sends, made fit to store and to log.

Every string in a proxy's requests is the proxy's to choose: node fields, user
agent, locality, type URLs, the versions and nonces it echoes back, the error
message of a NACK. Postgres refuses a NUL byte in text and a string longer
than its column, and refuses the whole statement with it; a log line with a
newline in it can forge another, and a megabyte of NACK message is a megabyte
of log. So such a value reaches neither unless it has passed here: `stored`
fits it to its column, `logged` makes it a bounded excerpt on one line.

The column lengths below are the models' (models.py uses them), so a value
cut here always fits.
"""
from __future__ import annotations

import re
import time

# Lengths of the proxy records' columns, in characters.
NODE_NAME_LENGTH = 255
NODE_ID_LENGTH = 512
USER_AGENT_LENGTH = 255
CLOUD_LENGTH = 63
LOCALITY_LENGTH = 255  # region and zone
REPLICA_LENGTH = 255
TYPE_URL_LENGTH = 255
VERSION_LENGTH = 64
NONCE_LENGTH = 32
# A NACK's error message as stored and shown on the proxies API and CSDS;
# Envoy's own messages are a few hundred characters.
NACK_MESSAGE_LENGTH = 4096

# How much of a proxy's value one log line quotes, and how many lines that
# proxies can cause at will (NACKs, refused records) a replica logs of each kind.
LOG_EXCERPT = 200
PROXY_LOG_LINES = 20
PROXY_LOG_INTERVAL = 60.0  # seconds

REPLACEMENT = "\ufffd"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINE_BREAKS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def has_control_characters(value: str) -> bool:
    return _CONTROL.search(value) is not None


def stored(value: str, length: int, *, multiline: bool = False) -> str:
    """The value as a column of `length` characters holds it: control
    characters (NUL among them) replaced by U+FFFD, except tabs and line
    breaks where `multiline`, and cut to `length`, the last character an
    ellipsis if it was cut."""
    value = (_CONTROL_BUT_LINE_BREAKS if multiline else _CONTROL).sub(REPLACEMENT, value)
    return value if len(value) <= length else value[:length - 1] + "\u2026"


def logged(value: str, length: int = LOG_EXCERPT) -> str:
    """The value quoted on one log line: at most `length` characters of it,
    every control character escaped (so it cannot start a line of its own)."""
    excerpt = value[:length]
    escaped = _CONTROL.sub(lambda match: repr(match.group())[1:-1], excerpt)
    return escaped if len(value) <= length else f"{escaped}\u2026 ({len(value) - length} more characters)"


class LogBudget:
    """At most `lines` log lines per `interval` seconds, for lines a proxy can
    cause at will. Not thread safe: use it from one event loop."""

    def __init__(self, lines: int, interval: float, clock=time.monotonic):
        self._lines = lines
        self._interval = interval
        self._clock = clock
        self._window_start = clock()
        self._used = 0
        self._left_out = 0

    def take(self) -> int | None:
        """None if this line is over the budget (it is counted); otherwise how
        many lines were left out since the last one that was logged."""
        now = self._clock()
        if now - self._window_start >= self._interval:
            self._window_start, self._used = now, 0
        if self._used >= self._lines:
            self._left_out += 1
            return None
        self._used += 1
        left_out, self._left_out = self._left_out, 0
        return left_out
