"""Finding the lines InfluxDB refuses: named by its answer when it names them, else a bounded
halving search (issue 18 item 7, issue 20). Engines are played by sinks of our own interface
that answer as each engine documents, and once by the real influxd 1.6 through the real
writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import InfluxSettings, SpoolSettings
from gateway.errors import SinkError
from gateway.model import Batch
from gateway.operations.counters import Metrics
from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from gateway.stages.deliver import Delivery
from gateway.stages.sinks import RefusedLinesError, Sink
from gateway.stages.sinks.influx import InfluxSink
from gateway.stages.sinks.recording import RecordingSink
from gateway.stages.spool import SPOOL_FILE, Spool
from tests.servers import Influxd


class EngineSink(RecordingSink):
    """Refuses every line containing "bad", answering as an engine does:
    `names` None: no line named (a halving search must find them); "all": every refused line
    named, the rest stored (InfluxDB 3, 1.x partial writes); "first": the first refused line
    named and nothing stored (2.x's parse error)."""

    def __init__(self, names: str | None) -> None:
        super().__init__()
        self.names = names
        self.requests = 0

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None:
        self.requests += 1
        bad = [index for index, line in enumerate(lines) if "bad" in line]
        if not bad:
            await super().write(lines, database, rp)
            return
        if self.names is None:
            raise SinkError("InfluxDB rejected the batch (HTTP 400)", retryable=False, status=400)
        if self.names == "first":
            raise RefusedLinesError(
                "unable to parse",
                refused={bad[0]: "unable to parse"},
                others_written=False,
                status=400,
            )
        await super().write([line for line in lines if "bad" not in line], database, rp)
        raise RefusedLinesError(
            "partial write",
            refused=dict.fromkeys(bad, "type conflict"),
            others_written=True,
            status=400,
        )


def make_delivery(tmp_path: Path, sink: Sink) -> Delivery:
    return Delivery(
        sink,
        Spool(tmp_path / SPOOL_FILE, max_bytes=1024**2),
        DeadLetterStore(tmp_path / DEAD_LETTER_FILE),
        SpoolSettings(dir=tmp_path),
        Metrics(),
    )


def batch_of(lines: list[str], database: str | None = None) -> Batch:
    return Batch(lines={(database, None): lines}, points=len(lines))


def lines_with_bad(count: int, bad_at: set[int]) -> list[str]:
    return [f"m v={'bad' if n in bad_at else f'{n}i'} {n}" for n in range(count)]


@pytest.mark.parametrize("names", ["all", "first", None])
async def test_exactly_the_refused_lines_become_dead_letters(
    tmp_path: Path, names: str | None
) -> None:
    lines = lines_with_bad(1000, {3, 500, 999})
    sink = EngineSink(names)
    delivery = make_delivery(tmp_path, sink)
    await delivery.commit(batch_of(lines))
    assert sorted(sink.lines) == sorted(line for line in lines if "bad" not in line)
    assert delivery.dead_letters.count("rejected_by_influx") == 3
    assert delivery.metrics.lines_rejected == 3
    # Named: one request ("all") or one per refused line plus the rest ("first"); the
    # search costs about 2·log2(n) per bad line.
    assert sink.requests == {"all": 1, "first": 4, None: sink.requests}[names]
    if names is None:
        assert 4 < sink.requests <= 1 + 64


async def test_the_halving_search_is_bounded_per_batch(tmp_path: Path) -> None:
    """Every tenth line refused and none named: the search stops after its budget, and each
    line is written or kept as a dead letter, none lost."""
    lines = lines_with_bad(5000, set(range(0, 5000, 10)))
    sink = EngineSink(None)
    delivery = make_delivery(tmp_path, sink)
    await delivery.commit(batch_of(lines))
    assert sink.requests <= 1 + 64
    letters = delivery.dead_letters.count("rejected_by_influx")
    assert len(sink.lines) + letters == 5000
    assert letters >= 500  # every bad line, and the good ones the search could not free
    assert not set(sink.lines) & {line for line in lines if "bad" in line}


async def test_an_engine_naming_one_line_per_answer_is_bounded_too(tmp_path: Path) -> None:
    lines = lines_with_bad(2000, set(range(0, 2000, 2)))
    sink = EngineSink("first")
    delivery = make_delivery(tmp_path, sink)
    await delivery.commit(batch_of(lines))
    assert sink.requests <= 1 + 64
    assert len(sink.lines) + delivery.dead_letters.count("rejected_by_influx") == 2000


class CountingInfluxSink(InfluxSink):
    def __init__(self, settings: InfluxSettings) -> None:
        super().__init__(settings)
        self.requests = 0

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None:
        self.requests += 1
        await super().write(lines, database, rp)


@pytest.mark.integration
async def test_influxdb_1x_partial_writes_name_the_lines_without_a_search(
    tmp_path: Path, influxd: Influxd, influx_db: str
) -> None:
    """1.6's `partial write: field type conflict ... dropped=N` and `unable to parse 'LINE'`
    answers: the refused lines are found from the text, in one request per batch."""
    influxd.write(influx_db, "m,device_id=a v=1i 1")  # v is an integer from now on
    sink = CountingInfluxSink(InfluxSettings(url=influxd.url, database=influx_db))
    delivery = make_delivery(tmp_path, sink)
    good = [f"m,device_id=a v={n}i {n}" for n in range(2, 400)]
    conflicts = ["m,device_id=b v=2.5 1000", 'm,device_id=c v="x",w=1i 1001']
    await delivery.commit(batch_of(good[:200] + conflicts + good[200:]))
    unparsable = ["m,device_id=d v= 2000", "not line protocol"]
    await delivery.commit(
        batch_of(good[:10] + unparsable + [f"m v={n}i {n}" for n in range(3000, 3010)])
    )
    await sink.close()
    assert sink.requests == 2
    assert delivery.dead_letters.count("rejected_by_influx") == 4
    assert influxd.count(influx_db, "m", "v") == 1 + len(good) + 10
