"""The disk spool on its own, and the pipeline's store-and-forward and receive-time rules.

The pipeline tests use a RecordingSink that can be switched to failing: InfluxDB's real
answers are covered by tests/test_influx_sink.py and the fault-injection suite.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from gateway.config import GatewaySettings
from gateway.errors import StorageFullError
from gateway.model import DeadLetter, Message
from gateway.pipeline import Gateway
from gateway.profiles.registry import load_directory
from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from gateway.stages.sinks.recording import RecordingSink
from gateway.stages.spool import SPOOL_FILE, Spool
from gateway.stages.storage import RESERVE_BYTES, RESERVE_FILE
from tests.fakes import (
    LEVEL_PROFILE,
    LEVEL_TOPIC,
    LIGHT_TOPIC,
    QueueIngest,
    SwitchableSink,
    light,
    run_and_drain,
)
from tests.small_disk import fill, free, small_disk
from tests.waits import wait_for, wait_for_async

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"


# ---- the spool file ----------------------------------------------------------------------------


def test_batches_come_back_oldest_first_and_survive_a_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_FILE, max_bytes=1024**2)
    assert spool.append("db1", None, ["m v=1i 1", "m v=2i 2"])
    assert spool.append(None, "rp", ["m v=3i 3"])
    spool.close()
    spool = Spool(tmp_path / SPOOL_FILE, max_bytes=1024**2)
    assert (spool.depth.batches, spool.depth.points) == (2, 3)
    [first] = spool.oldest(max_points=100)  # the next one is bound elsewhere
    assert (first.database, first.retention_policy, first.lines) == (
        "db1",
        None,
        ["m v=1i 1", "m v=2i 2"],
    )
    spool.remove([first])
    [second] = spool.oldest()
    assert (second.database, second.retention_policy, second.lines) == (None, "rp", ["m v=3i 3"])
    spool.remove([second])
    assert spool.oldest() == []
    assert (spool.depth.batches, spool.depth.points, spool.depth.bytes) == (0, 0, 0)
    assert spool.depth.oldest_ns == 0


def test_batches_for_one_destination_come_back_together_up_to_a_size(tmp_path: Path) -> None:
    """The replay sends several spooled batches in one request and removes them together."""
    spool = Spool(tmp_path / SPOOL_FILE, max_bytes=1024**2)
    for n in range(5):
        assert spool.append(None, None, [f"m v={n}i {n}", f"m v={n}i {n + 100}"])
    assert spool.append("other", None, ["m v=9i 9"])
    run = spool.oldest(max_points=5)
    assert [batch.lines[0] for batch in run] == ["m v=0i 0", "m v=1i 1"]  # 2 + 2 <= 5 < 6
    later = spool.oldest(max_points=100, after_id=run[-1].id)
    assert [batch.lines[0] for batch in later] == ["m v=2i 2", "m v=3i 3", "m v=4i 4"]
    assert [b.lines for b in spool.oldest(max_points=1, after_id=later[-1].id)] == [["m v=9i 9"]]
    assert len(spool.oldest(max_points=1)) == 1  # at least one, even when it is larger
    spool.remove(later)
    assert (spool.depth.batches, spool.depth.points) == (3, 5)
    spool.remove(run)
    assert spool.depth.oldest_ns == spool.oldest()[0].spooled_ns
    assert [batch.database for batch in spool.oldest(max_points=100)] == ["other"]
    spool.close()


def test_a_full_spool_refuses_and_stores_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_FILE, max_bytes=1024**2)
    line = "m v=1i 1" + " " * 1000
    while spool.append(None, None, [line] * 100):
        pass
    depth = spool.depth
    assert depth.bytes <= 1024**2
    assert not spool.append(None, None, [line] * 100)
    assert spool.depth == depth


def test_a_torn_write_ahead_log_record_is_skipped(tmp_path: Path) -> None:
    """A crash mid-write leaves a partial frame at the end of the WAL: the rest stays."""
    path = tmp_path / SPOOL_FILE
    writer = Spool(path, max_bytes=1024**2)
    assert writer.append(None, None, ["m v=1i 1"])
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 0  # still in the log, as after kill -9
    with wal.open("ab") as log:
        log.write(bytes(range(256)) * 2)  # a torn, checksum-less frame
    reader = Spool(path, max_bytes=1024**2)
    [batch] = reader.oldest()
    assert batch.lines == ["m v=1i 1"]
    assert reader.append(None, None, ["m v=2i 2"])  # and it is writable again
    reader.close()
    writer.close()


def test_an_unreadable_spool_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / SPOOL_FILE
    path.write_bytes(b"this is not an SQLite database" * 100)
    spool = Spool(path, max_bytes=1024**2)
    assert spool.depth.batches == 0
    assert [p.name.startswith(f"{SPOOL_FILE}.unreadable-") for p in tmp_path.iterdir()].count(True)
    spool.close()


def test_a_spool_out_of_reach_is_an_error_and_is_not_moved(tmp_path: Path) -> None:
    # A directory where the file should be: SQLite cannot open it, but nothing is damaged, so
    # the gateway must refuse to start instead of renaming what may be a good spool.
    path = tmp_path / SPOOL_FILE
    path.mkdir()
    with pytest.raises(sqlite3.OperationalError):
        Spool(path, max_bytes=1024**2)
    assert [p.name for p in tmp_path.iterdir()] == [SPOOL_FILE]


# ---- the pipeline with the spool ---------------------------------------------------------------


def make_gateway(
    state: Path, sink: RecordingSink, profiles: Path = PROFILES, **spool: object
) -> tuple[Gateway, QueueIngest]:
    settings = GatewaySettings(
        batch={"max_points": 3, "max_age_s": 0.05, "max_pending": 2},
        spool={"dir": str(state), "write_timeout_s": 0.1, **spool},
    )
    ingest = QueueIngest()
    return Gateway(settings, load_directory(profiles), sink=sink, ingest=ingest), ingest


async def test_an_outage_spools_acknowledges_and_replays_everything(tmp_path: Path) -> None:
    sink = SwitchableSink()
    sink.down = True
    instance, ingest = make_gateway(tmp_path, sink)
    stop = asyncio.Event()
    task = asyncio.create_task(instance.run(stop))
    for n in range(10):
        instance.on_message(Message(LIGHT_TOPIC, light(n), 1_000, False, n))
    await wait_for_async(lambda: len(ingest.acked) == 10, 5, "10 spooled and acknowledged")
    assert sink.lines == []
    assert instance.metrics.spool_points == 10
    assert instance.delivery.influx_down
    sink.down = False
    await wait_for_async(lambda: instance.metrics.spool_batches == 0, 5, "the spool replayed")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert sorted(sink.lines) == sorted(set(sink.lines))
    assert len(sink.lines) == 10
    assert instance.metrics.replayed_points == 10


async def test_a_spool_left_by_a_previous_run_is_replayed_at_start(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_FILE, max_bytes=1024**2)
    spool.append(None, None, ["m v=1i 1", "m v=2i 2"])
    spool.close()
    sink = SwitchableSink()
    instance, _ = make_gateway(tmp_path, sink)
    stop = asyncio.Event()
    task = asyncio.create_task(instance.run(stop))
    # Written, and then removed from the spool: a stop between the two replays it again.
    await wait_for_async(
        lambda: len(sink.lines) == 2 and instance.metrics.spool_batches == 0,
        5,
        "the old spool written and emptied",
    )
    stop.set()
    await asyncio.wait_for(task, 5)
    assert Spool(tmp_path / SPOOL_FILE, max_bytes=1024**2).depth.batches == 0


async def test_a_full_spool_stops_acknowledging_until_influx_recovers(tmp_path: Path) -> None:
    sink = SwitchableSink()
    sink.down = True
    instance, ingest = make_gateway(tmp_path, sink, max_bytes=1024**2)
    stop = asyncio.Event()
    task = asyncio.create_task(instance.run(stop))
    # Fill the spool to its limit behind the pipeline's back, as a long outage would.
    for filler in ("m v=1i 1" + "x" * 4000, "m v=1i 1"):
        while instance.spool.append(None, None, [filler] * 10):
            pass
    for n in range(6):
        instance.on_message(Message(LIGHT_TOPIC, light(n), 1_000, False, n))
    await wait_for_async(lambda: instance.metrics.spool_full, 5, "the spool full")
    # Nothing may be acknowledged while the writer goes on trying InfluxDB and the spool.
    attempts = sink.attempts
    await wait_for_async(lambda: sink.attempts >= attempts + 2, 10, "two more write attempts")
    assert ingest.acked == []  # nothing acknowledged: the broker keeps these
    assert ingest.paused
    sink.down = False
    await wait_for_async(lambda: len(ingest.acked) == 6, 5, "all 6 acknowledged")
    await wait_for_async(lambda: instance.metrics.spool_batches == 0, 20, "the spool replayed")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert sum(1 for line in sink.lines if line.startswith("streetlight")) == 6


async def test_a_redelivered_message_gets_its_first_receive_time_back(tmp_path: Path) -> None:
    """Crash after the write, before the ack: the redelivery must overwrite, not double."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "level.yaml").write_text(LEVEL_PROFILE)
    state = tmp_path / "state"

    first_sink = SwitchableSink()
    first, _ = make_gateway(state, first_sink, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    first.on_message(Message(LEVEL_TOPIC, b"2.5", 111_000, False, 1, False, packet_id=7))
    await wait_for_async(lambda: len(first_sink.lines) == 1, 5, "the first run's write")
    stop.set()
    await asyncio.wait_for(task, 5)

    # The next run: the broker redelivers packet 7 (DUP), then sends a new, equal reading.
    second_sink = SwitchableSink()
    second, _ = make_gateway(state, second_sink, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(second.run(stop))
    second.on_message(Message(LEVEL_TOPIC, b"2.5", 999_000, False, 1, True, packet_id=7))
    second.on_message(Message(LEVEL_TOPIC, b"2.5", 555_000, False, 2, False, packet_id=8))
    await wait_for_async(lambda: len(second_sink.lines) == 2, 5, "the second run's writes")
    stop.set()
    await asyncio.wait_for(task, 5)

    assert first_sink.lines == ["tank_level,device_id=tank-1 level_m=2.5 111000"]
    assert second_sink.lines == [
        "tank_level,device_id=tank-1 level_m=2.5 111000",  # the same point: InfluxDB overwrites
        "tank_level,device_id=tank-1 level_m=2.5 555000",
    ]
    assert second.metrics.receive_times_reused == 1


async def test_a_redelivery_in_the_same_run_reuses_the_pending_receive_time(
    tmp_path: Path,
) -> None:
    """Broker restart: the first delivery is still in an unwritten batch when the DUP arrives."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "level.yaml").write_text(LEVEL_PROFILE)
    sink = SwitchableSink()
    instance, _ = make_gateway(tmp_path / "state", sink, profiles)
    instance.on_message(Message(LEVEL_TOPIC, b"3", 111_000, False, (1, 7), False, packet_id=7))
    instance.on_message(Message(LEVEL_TOPIC, b"3", 222_000, False, (2, 7), True, packet_id=7))
    await run_and_drain(instance)
    assert set(sink.lines) == {"tank_level,device_id=tank-1 level_m=3.0 111000"}


def test_receive_times_are_forgotten_after_their_window(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_FILE, max_bytes=1024**2)
    key = ("t", 1, b"digest!!")
    spool.record_receive_times([(key, 42)])
    assert spool.first_receive_time(key) == 42
    assert spool.first_receive_time(("t", 1, b"other!!!")) is None
    assert spool.forget_receive_times(recorded_before_ns=0) == 0
    assert spool.forget_receive_times(recorded_before_ns=2**62) == 1
    assert spool.first_receive_time(key) is None
    spool.close()
    assert sqlite3.connect(tmp_path / SPOOL_FILE).execute("PRAGMA journal_mode").fetchone() == (
        "wal",
    )


# ---- a full disk (gateway/stages/storage.py) ---------------------------------------------------


def test_a_full_disk_refuses_the_batch_and_names_sqlites_error_then_recovers(
    tmp_path: Path,
) -> None:
    with small_disk(tmp_path / "state", 2 * 1024**2) as state:
        spool = Spool(state / SPOOL_FILE, max_bytes=1024**2)
        assert spool.storage.disk_full is None
        fill(state)
        lines = [f"m v={i}i {i}" for i in range(2000)]
        assert not spool.append(None, None, lines)  # refused: nothing stored, no exception
        assert spool.storage.disk_full is not None
        assert "database or disk is full" in spool.storage.disk_full  # not the ROLLBACK's text
        assert spool.depth.batches == 0
        free(state)
        assert spool.append(None, None, lines)
        assert spool.storage.disk_full is None
        assert spool.depth.points == 2000
        spool.close()


def test_the_stores_open_on_a_full_disk_in_the_room_of_the_reserve(tmp_path: Path) -> None:
    with small_disk(tmp_path / "state", 2 * 1024**2) as state:
        Spool(state / SPOOL_FILE, max_bytes=1024**2).close()
        DeadLetterStore(state / DEAD_LETTER_FILE).close()
        assert (state / RESERVE_FILE).stat().st_size == RESERVE_BYTES
        fill(state)  # a clean stop removed the -wal and -shm files: opening must make them
        spool = Spool(state / SPOOL_FILE, max_bytes=64 * 1024**2)  # the disk is the limit
        store = DeadLetterStore(state / DEAD_LETTER_FILE)
        assert not (state / RESERVE_FILE).exists()
        # The reserve's room is the stores' to use; then the disk is full again: refused.
        assert not all(spool.append(None, None, ["m v=1i 1"] * 20_000) for _ in range(10))
        assert spool.storage.disk_full is not None
        free(state)
        assert spool.append(None, None, ["m v=1i 1"])
        spool.close()
        store.close()


def test_dead_letters_wait_for_space_and_close_ends_the_wait(tmp_path: Path) -> None:
    with small_disk(tmp_path / "state", 2 * 1024**2) as state:
        store = DeadLetterStore(state / DEAD_LETTER_FILE)
        fill(state)
        letters = [DeadLetter(i, "t/x", b"p" * 4096, "invalid_json") for i in range(100)]
        adding = threading.Thread(target=store.add, args=(letters,))
        adding.start()
        wait_for(lambda: store.storage.disk_full is not None, 10, "the disk-full state")
        assert adding.is_alive()  # not acknowledged, not lost: waiting
        free(state)
        adding.join(timeout=10)
        assert not adding.is_alive()
        assert store.count() == 100
        assert store.storage.disk_full is None
        fill(state)
        failed: list[BaseException] = []
        stuck = threading.Thread(target=_add_catching, args=(store, letters, failed))
        stuck.start()
        wait_for(lambda: store.storage.disk_full is not None, 10, "the disk-full state")
        store.close()  # what the pipeline does on SIGTERM
        stuck.join(timeout=10)
        assert not stuck.is_alive()
        assert [type(error) for error in failed] == [StorageFullError]


def _add_catching(
    store: DeadLetterStore, letters: list[DeadLetter], failed: list[BaseException]
) -> None:
    try:
        store.add(letters)
    except StorageFullError as exc:
        failed.append(exc)


def test_dead_letters_are_bounded_by_bytes_oldest_evicted_and_counted(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / DEAD_LETTER_FILE, max_records=1000, max_bytes=1024**2)
    for batch in range(40):
        store.add(
            [DeadLetter(batch * 10 + i, "t/x", b"p" * 8192, "rate_limited") for i in range(10)]
        )
    assert store.bytes <= 1024**2
    assert store.count() == 1024**2 // (8192 + 3 + 0)
    assert store.evicted == 400 - store.count()
    assert store.select(None, None, 0, 1)[0][1].received_ns == store.evicted  # oldest went
    reopened = DeadLetterStore(tmp_path / DEAD_LETTER_FILE, max_records=1000, max_bytes=1024**2)
    assert reopened.bytes == store.bytes


def test_state_files_are_private(tmp_path: Path) -> None:
    Spool(tmp_path / SPOOL_FILE, max_bytes=1024**2).append(None, None, ["m v=1i 1"])
    DeadLetterStore(tmp_path / DEAD_LETTER_FILE).add([DeadLetter(1, "t", b"secret", "x")])
    for file in tmp_path.iterdir():
        assert file.stat().st_mode & 0o777 == 0o600, file
