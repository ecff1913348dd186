"""A dead-letter store at its bounds (issue 18): `[spool] deadletter_when_full = "evict"` deletes
the oldest letters, "pause" keeps them all and waits like a full disk: nothing acknowledged,
intake paused, /readyz names the store, and it resumes by itself once letters are removed (by
`gateway deadletter replay` or sqlite3, from another process)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from gateway.config import GatewaySettings, load_settings
from gateway.errors import ConfigError, StorageFullError
from gateway.model import DeadLetter, Message
from gateway.operations.watchdog import Watchdog
from gateway.pipeline import Gateway
from gateway.profiles.registry import load_directory
from gateway.stages.deadletter import DEAD_LETTER_FILE, DeadLetterStore
from gateway.stages.sinks.recording import RecordingSink
from tests.fakes import LIGHT_TOPIC, QueueIngest, light
from tests.waits import wait_for, wait_for_async

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"


def letters(first: int, count: int) -> list[DeadLetter]:
    return [DeadLetter(n, "t/x", b"payload", "invalid_json") for n in range(first, first + count)]


def delete_oldest(path: Path, count: int) -> None:
    """What an operator's sqlite3 (or a replay) does: another connection, another process."""
    with sqlite3.connect(path) as db:
        db.execute(
            "DELETE FROM dead_letters WHERE id IN"
            " (SELECT id FROM dead_letters ORDER BY id LIMIT ?)",
            (count,),
        )
    db.close()


def test_a_paused_store_waits_for_room_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / DEAD_LETTER_FILE
    store = DeadLetterStore(path, max_records=10, when_full="pause")
    store.add(letters(0, 8))
    adding = threading.Thread(target=store.add, args=(letters(8, 5),), daemon=True)
    adding.start()
    wait_for(lambda: store.storage.disk_full is not None, 10, "the store-full state")
    assert adding.is_alive()  # waiting: its batch is neither stored nor acknowledged
    assert store.storage.disk_full is not None
    assert "deadletter_max_records 10" in store.storage.disk_full
    assert 'deadletter_when_full = "pause"' in store.storage.disk_full
    assert store.count() == 8
    delete_oldest(path, 3)
    adding.join(timeout=10)
    assert not adding.is_alive()
    assert store.storage.disk_full is None
    assert [letter.received_ns for _, letter in store.select(None, None, 0, 100)] == list(
        range(3, 13)
    )
    assert store.evicted == 0
    store.close()


def test_close_ends_the_wait_of_a_paused_store(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / DEAD_LETTER_FILE, max_records=10, when_full="pause")
    store.add(letters(0, 10))
    failed: list[BaseException] = []

    def add() -> None:
        try:
            store.add(letters(10, 1))
        except StorageFullError as exc:
            failed.append(exc)

    adding = threading.Thread(target=add, daemon=True)
    adding.start()
    wait_for(lambda: store.storage.disk_full is not None, 10, "the store-full state")
    store.close()  # what the pipeline does on SIGTERM
    adding.join(timeout=10)
    assert [type(error) for error in failed] == [StorageFullError]


def test_an_empty_paused_store_takes_a_batch_larger_than_its_bounds(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / DEAD_LETTER_FILE, max_records=10, when_full="pause")
    store.add(letters(0, 15))  # would otherwise wait for ever
    assert store.count() == 15
    store.close()


def test_eviction_counts_letters_another_process_removed(tmp_path: Path) -> None:
    path = tmp_path / DEAD_LETTER_FILE
    store = DeadLetterStore(path, max_records=10)
    store.add(letters(0, 10))
    delete_oldest(path, 5)  # a replay: the store has room for 5 again
    store.add(letters(10, 5))
    assert store.evicted == 0
    assert store.count() == 10
    store.close()


def test_deadletter_when_full_names_the_valid_values(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[spool]\ndeadletter_when_full = "drop"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert str(error.value) == (
        f"{config}: spool.deadletter_when_full: Input should be 'evict' or 'pause' (got: 'drop')"
    )
    assert GatewaySettings().spool.deadletter_when_full == "evict"  # the disk stays safe


async def test_a_full_store_set_to_pause_holds_intake_until_letters_are_removed(
    tmp_path: Path,
) -> None:
    settings = GatewaySettings(
        batch={"max_points": 1, "max_age_s": 0.05, "max_pending": 2},
        spool={
            "dir": str(tmp_path),
            "deadletter_max_records": 1000,
            "deadletter_when_full": "pause",
        },
    )
    ingest, clock = QueueIngest(), [0.0]
    gateway = Gateway(
        settings,
        load_directory(PROFILES),
        sink=RecordingSink(),
        ingest=ingest,
        watchdog=Watchdog(stall_after_s=60, clock_s=lambda: clock[0]),
    )
    store = gateway.dead_letters
    store.add(letters(0, 999))  # one letter short of deadletter_max_records
    bad = [Message(LIGHT_TOPIC, b"{not json", 1_000, False, token) for token in (1, 2, 3)]
    good = [Message(LIGHT_TOPIC, light(n), 1_000, False, 10 + n) for n in range(5)]
    stop = asyncio.Event()
    running = asyncio.create_task(gateway.run(stop))
    try:
        for message in [*bad, *good]:  # one batch each (max_points 1)
            gateway.on_message(message)
        await wait_for_async(
            lambda: ingest.paused and not gateway.readiness().ok, 10, "intake paused, not ready"
        )
        [reason] = gateway.readiness().reasons
        assert reason.startswith("dead-letter store: cannot write (full: 1000 letters")
        assert ingest.acked == [1]  # the letter that fitted; nothing after it
        ingest.unread_bytes = 4096  # the broker keeps what is not read
        assert gateway.watchdog.failing() == []
        clock[0] = 1000.0
        assert gateway.watchdog.failing() == []  # a known wait, reported by /readyz
        delete_oldest(store.path, 10)  # room: the writer goes on, no restart
        await wait_for_async(lambda: len(ingest.acked) == 8, 10, "everything acknowledged")
        assert gateway.readiness().ok
        assert not ingest.paused
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
    assert ingest.acked == [1, 2, 3, 10, 11, 12, 13, 14]
    assert store.evicted == 0
    assert DeadLetterStore(store.path).count() == 1000 - 10 + 2
