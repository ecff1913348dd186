"""`gateway deadletter replay`: run dead letters through the pipeline again after a fix.

A message letter goes through today's profiles and the gateway's message rules
(gateway/process.py: resolve, decode, normalize, known devices, series budget, readings limit,
privacy, clock tolerance), with its original receive time, so replaying twice writes the same
points, which InfluxDB overwrites. Only the per-device rate limit is left out: it guards live
intake, and `rate_limited` letters are meant to be replayed. The series budget starts empty in
this process: a replay alone cannot exceed a profile's budget, but it does not know the series a
running gateway has created. A letter
that holds line protocol (refused by InfluxDB, or an expired spool batch) is written as it is.
Letters InfluxDB accepted are removed from the store; the others stay, counted by the reason
they fail with now. It can run while the gateway runs: both use SQLite transactions.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.errors import SinkError
from gateway.model import DeadLetter, Message
from gateway.process import Accepted, MessageLimits, MessageRules, Refused
from gateway.profiles.registry import ProfileRegistry
from gateway.stages.deadletter import DeadLetterStore
from gateway.stages.sinks import Sink

_CHUNK = 500

Destination = tuple[str | None, str | None]


@dataclass(slots=True)
class ReplayReport:
    replayed: int = 0  # letters now in InfluxDB and removed from the store
    points: int = 0
    still_failing: Counter[str] = field(default_factory=Counter)  # reason -> letters kept
    seen: int = 0  # letters looked at so far, for progress

    @property
    def kept(self) -> int:
        return sum(self.still_failing.values())


# Called after every chunk, so a long replay can show where it is.
Progress = Callable[[ReplayReport], None]


@dataclass(slots=True)
class _Ready:
    letter_id: int
    destination: Destination
    lines: list[str]


class DeadLetterReplay:
    def __init__(
        self,
        store: DeadLetterStore,
        registry: ProfileRegistry,
        sink: Sink,
        limits: MessageLimits | None = None,
    ) -> None:
        self._store = store
        self._rules = MessageRules(registry, limits)  # no rate limit: see the module docstring
        self._sink = sink

    async def run(
        self,
        reason: str | None,
        profile_id: str | None,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> ReplayReport:
        """Replay matching letters, oldest first; raises SinkError if InfluxDB is unavailable."""
        report = ReplayReport()
        after_id = 0
        while letters := self._store.select(reason, profile_id, after_id, _CHUNK):
            after_id = letters[-1][0]
            report.seen += len(letters)
            ready = []
            for letter_id, letter in letters:
                outcome = self._lines_for(letter)
                if isinstance(outcome, str):
                    report.still_failing[outcome] += 1
                else:
                    ready.append(_Ready(letter_id, *outcome))
            if dry_run:
                report.replayed += len(ready)
                report.points += sum(len(item.lines) for item in ready)
            else:
                written = await self._write(ready, report)
                self._store.remove([item.letter_id for item in written])
                report.replayed += len(written)
                report.points += sum(len(item.lines) for item in written)
            if progress is not None:
                progress(report)
        return report

    def _lines_for(self, letter: DeadLetter) -> tuple[Destination, list[str]] | str:
        """The lines to write and where, or the reason the letter still fails."""
        if letter.holds_lines:
            lines = [line for line in letter.payload.decode().split("\n") if line]
            return (letter.database, letter.retention_policy), lines
        outcome = self._rules.process(Message(letter.topic, letter.payload, letter.received_ns))
        if isinstance(outcome, Refused):
            return outcome.reason
        if not isinstance(outcome, Accepted):  # an availability message: nothing to write
            return (None, None), []
        profile = outcome.profile
        return (profile.database, profile.retention_policy), outcome.readings.lines

    async def _write(self, ready: list[_Ready], report: ReplayReport) -> list[_Ready]:
        """Write a chunk per destination; on a refusal, letter by letter to keep the bad ones."""
        by_destination: dict[Destination, list[_Ready]] = defaultdict(list)
        written: list[_Ready] = []
        for item in ready:
            if item.lines:
                by_destination[item.destination].append(item)
            else:  # nothing to write (an availability message): handled
                written.append(item)
        for (database, rp), items in by_destination.items():
            try:
                await self._sink.write([line for i in items for line in i.lines], database, rp)
                written.extend(items)
                continue
            except SinkError as exc:
                if exc.retryable:
                    raise
            for item in items:
                try:
                    await self._sink.write(item.lines, database, rp)
                except SinkError as exc:
                    if exc.retryable:
                        raise
                    report.still_failing["rejected_by_influx"] += 1
                    continue
                written.append(item)
        return written
