"""The gateway's own counters: cheap to bump on the hot path, read by the CLI, demo and tests.

Plain integers and dicts, no locks: everything runs on one event loop thread.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Metrics:
    messages_received: int = 0
    messages_by_profile: Counter[str] = field(default_factory=Counter)
    points_produced: Counter[str] = field(default_factory=Counter)  # per domain
    points_written: Counter[str] = field(default_factory=Counter)  # per domain
    fields_dropped: Counter[str] = field(default_factory=Counter)  # per reason
    dead_letters: Counter[str] = field(default_factory=Counter)  # per reason
    lines_rejected: int = 0
    batches_written: int = 0
    write_retries: int = 0
    write_failures: Counter[str] = field(default_factory=Counter)  # per kind
    last_write_error: str = ""
    write_latency_s_sum: float = 0.0
    write_latency_s_max: float = 0.0
    messages_acked: int = 0

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy, for progress lines and `gateway status`."""
        return {
            "messages_received": self.messages_received,
            "messages_acked": self.messages_acked,
            "messages_by_profile": dict(self.messages_by_profile),
            "points_produced": dict(self.points_produced),
            "points_written": dict(self.points_written),
            "fields_dropped": dict(self.fields_dropped),
            "dead_letters": dict(self.dead_letters),
            "lines_rejected": self.lines_rejected,
            "batches_written": self.batches_written,
            "write_retries": self.write_retries,
            "write_failures": dict(self.write_failures),
            "last_write_error": self.last_write_error,
            "write_latency_s_avg": (
                self.write_latency_s_sum / self.batches_written if self.batches_written else 0.0
            ),
            "write_latency_s_max": self.write_latency_s_max,
        }
