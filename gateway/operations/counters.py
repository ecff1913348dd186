"""The gateway's own counters: cheap to bump on the hot path, read by the CLI, demo and tests.

Plain integers and dicts, no locks: everything runs on one event loop thread.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

# Upper bounds (seconds) of the write latency histogram, Prometheus `le` style. A local InfluxDB
# answers in milliseconds; seconds mean a slow disk, a compaction or a distant server.
WRITE_LATENCY_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _latency_buckets() -> list[int]:
    return [0] * (len(WRITE_LATENCY_BUCKETS_S) + 1)  # the last one counts the slower writes


# Warnings vendor codecs returned, per codec: counted by the codec sandbox where they happen
# (gateway/stages/codec.py; a reading with warnings is still stored) and shown by Metrics.
CODEC_WARNINGS: Counter[str] = Counter()


@dataclass(slots=True)
class Metrics:
    messages_received: int = 0
    messages_by_profile: Counter[str] = field(default_factory=Counter)
    points_produced: Counter[str] = field(default_factory=Counter)  # per domain
    points_written: Counter[str] = field(default_factory=Counter)  # per domain
    fields_dropped: Counter[str] = field(default_factory=Counter)  # per reason
    dead_letters: Counter[str] = field(default_factory=Counter)  # per reason
    lines_rejected: int = 0
    # Lines the engine answered 2xx for and dropped unparsed: VictoriaMetrics' invalid-row
    # counter's increase, read from its /metrics (gateway/stages/sinks/victoria.py).
    engine_lines_dropped: int = 0
    batches_written: int = 0
    write_retries: int = 0
    write_failures: Counter[str] = field(default_factory=Counter)  # per kind
    last_write_error: str = ""
    write_latency_s_sum: float = 0.0
    write_latency_s_max: float = 0.0
    messages_acked: int = 0
    # store-and-forward (gateway/stages/spool.py); depth figures are refreshed by the writer
    spool_batches: int = 0
    spool_points: int = 0
    spool_bytes: int = 0
    spool_oldest_ns: int = 0  # 0 when the spool is empty
    spooled_batches: int = 0  # batches ever put in the spool
    replayed_batches: int = 0
    replayed_points: int = 0
    spool_expired_batches: int = 0
    spool_full: bool = False  # intake stopped because the spool reached max_bytes
    # Backpressure (gateway/pipeline.py): intake paused because [batch] max_pending sealed
    # batches waited for the writer (InfluxDB slower than the devices, the spool full, a full
    # disk or dead-letter store). Bumped on the pause and resume transitions only, never per
    # message; the pause under way is added when the figures are read.
    intake_pauses: int = 0
    intake_paused_s: float = 0.0  # pauses that ended
    intake_paused_since_ns: int = 0  # wall clock start of the pause under way; 0 when reading
    receive_times_reused: int = 0  # redeliveries that got their first receive time back
    # Device liveness: availability (last will) messages per state (online, offline,
    # unrecognized), and retained readings stamped with the receive time, not written.
    availability_messages: Counter[str] = field(default_factory=Counter)
    retained_readings_skipped: int = 0
    # LoRaWAN uplinks without an application payload (fPort 0, MAC commands only): nothing to
    # store, acknowledged and counted, never dead letters.
    empty_frames: int = 0
    # Rate-limited messages of a device past its share of the dead-letter store
    # ([limits] device_rate_per_s/device_burst): acknowledged and counted, not stored.
    refusals_not_kept: int = 0
    # Dead letters deleted, oldest first, to keep the store within [spool]
    # deadletter_max_records / deadletter_max_bytes (gateway/stages/deadletter.py).
    dead_letters_evicted: int = 0
    # Warnings vendor codecs returned with readings that were stored, per codec (script name).
    codec_warnings: Counter[str] = field(default_factory=Counter)
    influx_auth_failing: bool = False  # 401/403: data kept, operator must fix credentials
    profile_reloads: int = 0
    profile_reloads_failed: int = 0
    influx_writable: bool = True  # the last write attempt succeeded; optimistic at start
    # per bucket of WRITE_LATENCY_BUCKETS_S, not cumulative; fed by observe_write_latency()
    write_latency_buckets: list[int] = field(default_factory=_latency_buckets)
    write_latency_count: int = 0

    def observe_write_latency(self, seconds: float) -> None:
        """Count one successful write's duration; called once per write request, not per point."""
        self.write_latency_buckets[bisect_left(WRITE_LATENCY_BUCKETS_S, seconds)] += 1
        self.write_latency_count += 1
        self.write_latency_s_sum += seconds
        self.write_latency_s_max = max(self.write_latency_s_max, seconds)

    def pause_intake(self, now_ns: int) -> None:
        """Intake stops reading the socket; a pause already under way goes on."""
        if not self.intake_paused_since_ns:
            self.intake_pauses += 1
            self.intake_paused_since_ns = now_ns

    def resume_intake(self, now_ns: int) -> None:
        """Intake reads again; adds the pause that ends (no-op when not paused)."""
        if self.intake_paused_since_ns:
            self.intake_paused_s += max(0, now_ns - self.intake_paused_since_ns) / 1e9
            self.intake_paused_since_ns = 0

    def intake_paused_total_s(self, now_ns: int) -> float:
        """Seconds intake was paused since start, the pause under way included."""
        ongoing_ns = (
            max(0, now_ns - self.intake_paused_since_ns) if self.intake_paused_since_ns else 0
        )
        return self.intake_paused_s + ongoing_ns / 1e9

    def write_latency_cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, writes at most that slow) per bucket, ending with (inf, all writes)."""
        bounds = (*WRITE_LATENCY_BUCKETS_S, float("inf"))
        total = 0
        cumulative = []
        for bound, count in zip(bounds, self.write_latency_buckets, strict=True):
            total += count
            cumulative.append((bound, total))
        return cumulative

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
            "engine_lines_dropped": self.engine_lines_dropped,
            "batches_written": self.batches_written,
            "write_retries": self.write_retries,
            "write_failures": dict(self.write_failures),
            "last_write_error": self.last_write_error,
            "write_latency_s_avg": (
                self.write_latency_s_sum / self.batches_written if self.batches_written else 0.0
            ),
            "write_latency_s_max": self.write_latency_s_max,
            "spool": {
                "batches": self.spool_batches,
                "points": self.spool_points,
                "bytes": self.spool_bytes,
                "oldest_ns": self.spool_oldest_ns,
                "spooled_batches": self.spooled_batches,
                "replayed_batches": self.replayed_batches,
                "replayed_points": self.replayed_points,
                "expired_batches": self.spool_expired_batches,
                "full": self.spool_full,
            },
            "intake_pauses": self.intake_pauses,
            "intake_paused_s": self.intake_paused_total_s(time.time_ns()),
            "receive_times_reused": self.receive_times_reused,
            "availability_messages": dict(self.availability_messages),
            "retained_readings_skipped": self.retained_readings_skipped,
            "empty_frames": self.empty_frames,
            "refusals_not_kept": self.refusals_not_kept,
            "dead_letters_evicted": self.dead_letters_evicted,
            "codec_warnings": dict(self.codec_warnings),
            "influx_auth_failing": self.influx_auth_failing,
            "profile_reloads": self.profile_reloads,
            "profile_reloads_failed": self.profile_reloads_failed,
            "influx_writable": self.influx_writable,
            "write_latency_count": self.write_latency_count,
        }
