"""Logging set-up: one line per event, `key=value` context, readable by journald and humans."""

from __future__ import annotations

import logging
import sys


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class LogThrottle:
    """At most one log line per key per interval, so a flood of bad messages cannot flood the log.

    `allow(key, now_ns)` returns None to stay quiet, or how many lines were held back since the
    last one that was logged (0 for none)."""

    def __init__(self, interval_s: float) -> None:
        self._interval_ns = int(interval_s * 1e9)
        self._windows: dict[str, list[int]] = {}  # key -> [window start ns, held back]

    def allow(self, key: str, now_ns: int) -> int | None:
        window = self._windows.get(key)
        if window is None or now_ns - window[0] >= self._interval_ns:
            held_back = window[1] if window else 0
            self._windows[key] = [now_ns, 0]
            return held_back
        window[1] += 1
        return None
