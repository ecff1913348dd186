"""`gateway deadletter replay`: run dead letters through the pipeline again after a fix.

A message letter goes through today's profiles (resolve, decode, normalize) with its original
receive time, so replaying twice writes the same points, which InfluxDB overwrites. A letter
that holds line protocol (refused by InfluxDB, or an expired spool batch) is written as it is.
Letters InfluxDB accepted are removed from the store; the others stay, counted by the reason
they fail with now. It can run while the gateway runs: both use SQLite transactions.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.errors import DecodeError, SinkError
from gateway.profiles.registry import ProfileRegistry
from gateway.stages.deadletter import DeadLetter, DeadLetterStore
from gateway.stages.decode import Decoder, decoder_for
from gateway.stages.lineprotocol import encode_point
from gateway.stages.normalize import Drop, normalize
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
    def __init__(self, store: DeadLetterStore, registry: ProfileRegistry, sink: Sink) -> None:
        self._store = store
        self._registry = registry
        self._sink = sink
        self._decoders: dict[str, Decoder] = {
            p.id: decoder_for(p.decode_spec) for p in registry.profiles
        }

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
        resolved = self._registry.resolve(letter.topic)
        if resolved is None:
            return "unknown_topic"
        profile = resolved.profile
        drops: list[Drop] = []
        try:
            document = self._decoders[profile.id](letter.payload)
            points = normalize(profile, document, resolved.segments, letter.received_ns, drops)
        except DecodeError as exc:
            return exc.reason
        lines = [encode_point(point) for point in points]
        return (profile.database, profile.retention_policy), lines

    async def _write(self, ready: list[_Ready], report: ReplayReport) -> list[_Ready]:
        """Write a chunk per destination; on a refusal, letter by letter to keep the bad ones."""
        by_destination: dict[Destination, list[_Ready]] = defaultdict(list)
        for item in ready:
            by_destination[item.destination].append(item)
        written: list[_Ready] = []
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
