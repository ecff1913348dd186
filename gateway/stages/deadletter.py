"""The dead-letter store: every message the gateway could not turn into points, kept with why.

SQLite in WAL mode in the state directory: one file, crash-safe, readable with any SQLite tool,
and easy to query by reason or profile for inspection and replay. Records are added in group
commits (one transaction per batch) before the batch's messages are acknowledged, so a message
is never acknowledged unless it is either in InfluxDB or in here.

Bounded by rows and by bytes (topic, payload and detail; at 64 KiB payloads a million rows
would be 64 GB): beyond either bound the oldest letters are deleted in the same transaction
and counted in `evicted`, or, with `when_full="pause"`, nothing is deleted and `add` waits
until letters are removed (`gateway deadletter replay`, from another process), exactly as it
waits on a full disk (gateway/stages/storage.py): nothing acknowledged, intake paused, /readyz
names the store.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from gateway.model import DeadLetter
from gateway.stages.storage import (
    StorageState,
    StoreAtBoundsError,
    create_private,
    open_database,
    run_transaction,
)

log = logging.getLogger(__name__)

DEAD_LETTER_FILE = "deadletter.sqlite3"
"""Its name inside the `[spool] dir`."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ns INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    profile_id TEXT,
    database TEXT,
    retention_policy TEXT
);
CREATE INDEX IF NOT EXISTS dead_letters_reason ON dead_letters (reason);
"""

_EVICTION_LOG_EVERY_S = 60.0

_SELECT = (
    "SELECT id, received_ns, topic, payload, reason, detail, profile_id, database,"
    " retention_policy FROM dead_letters"
)


class DeadLetterStore:
    """Bounded by `max_records` rows and `max_bytes`: the oldest records go first, or with
    `when_full="pause"` new ones wait for room."""

    def __init__(
        self,
        path: Path,
        max_records: int = 1_000_000,
        max_bytes: int = 256 * 1024**2,
        when_full: Literal["evict", "pause"] = "evict",
    ) -> None:
        create_private(path)
        self.path = path
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._wait_when_full = when_full == "pause"
        self.storage = StorageState("dead-letter store")
        self.evicted = 0  # letters deleted to stay within the bounds, since start
        self._evicted_logged_at = -_EVICTION_LOG_EVERY_S
        # A commit waiting for space and close() on SIGTERM come from different threads.
        self._lock = threading.Lock()
        self._db = open_database(path, _connect)
        self._add_missing_columns()
        self._data_version = -1  # none seen: _count_again_if_changed counts
        self._rows = self._bytes = 0
        self._count_again_if_changed(self._db)

    @property
    def bytes(self) -> int:
        """Topic, payload and detail bytes of the stored letters (what max_bytes bounds)."""
        return self._bytes

    def _add_missing_columns(self) -> None:
        """Stores written by an older version lack the destination columns."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(dead_letters)")}
        for column in ("database", "retention_policy"):
            if column not in present:
                self._db.execute(f"ALTER TABLE dead_letters ADD COLUMN {column} TEXT")

    def add(self, letters: list[DeadLetter]) -> None:
        """Append and fsync in one transaction (blocking: call it from a worker thread).

        On a full disk this waits until the letters are stored (or close() is called)."""
        if not letters:
            return
        rows = [
            (
                d.received_ns,
                d.topic,
                d.payload,
                d.reason,
                d.detail,
                d.profile_id,
                d.database,
                d.retention_policy,
            )
            for d in letters
        ]
        added = sum(_size(d) for d in letters)
        self.storage.retry_until_written(self.path, lambda: self._insert(rows, added))

    def _insert(self, rows: Sequence[tuple[object, ...]], added: int) -> None:
        def insert(db: sqlite3.Connection) -> tuple[int, int]:
            self._count_again_if_changed(db)
            excess_rows = self._rows + len(rows) - self._max_records
            excess_bytes = self._bytes + added - self._max_bytes
            if self._wait_when_full:
                # An empty store takes any batch: one larger than the bounds would wait for ever.
                if (excess_rows > 0 or excess_bytes > 0) and self._rows:
                    raise self._full()
                excess_rows = excess_bytes = 0
            db.executemany(
                "INSERT INTO dead_letters (received_ns, topic, payload, reason, detail,"
                " profile_id, database, retention_policy) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            return self._evict_oldest(db, excess_rows, excess_bytes)

        with self._lock:
            evicted, freed = run_transaction(self._db, insert)
            self._rows += len(rows) - evicted
            self._bytes += added - freed
        if evicted:
            self._note_evicted(evicted)

    def _count_again_if_changed(self, db: sqlite3.Connection) -> None:
        """Count rows and bytes again when another connection committed since the last look
        (`gateway deadletter replay` removes letters from its own process): stale counts would
        evict letters that fit, or keep a paused store waiting. SQLite's `data_version` changes
        exactly then; it is read inside the write transaction, so the counts match the rows."""
        version = db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        self._data_version = version
        rows, size = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(topic) + length(payload) + length(detail)), 0)"
            " FROM dead_letters"
        ).fetchone()
        self._rows, self._bytes = int(rows), int(size)

    def _full(self) -> StoreAtBoundsError:
        return StoreAtBoundsError(
            f"full: {self._rows} letters, {self._bytes} bytes; [spool] deadletter_max_records "
            f"{self._max_records}, deadletter_max_bytes {self._max_bytes}, "
            'deadletter_when_full = "pause"',
            "Make room: `gateway deadletter replay` what can be replayed, delete letters "
            f"from {self.path} with sqlite3, or raise the bounds and restart",
        )

    def _evict_oldest(
        self, db: sqlite3.Connection, excess_rows: int, excess_bytes: int
    ) -> tuple[int, int]:
        """Delete the oldest letters until both excesses are covered: (letters, bytes)."""
        if excess_rows <= 0 and excess_bytes <= 0:
            return 0, 0
        evicted = freed = 0
        last_id = None
        # Lazily stepped: reads only as many of the oldest sizes as it deletes.
        oldest = db.execute(
            "SELECT id, length(topic) + length(payload) + length(detail) FROM dead_letters"
            " ORDER BY id"
        )
        for letter_id, size in oldest:
            if evicted >= excess_rows and freed >= excess_bytes:
                break
            last_id, evicted, freed = letter_id, evicted + 1, freed + size
        oldest.close()
        if last_id is not None:
            db.execute("DELETE FROM dead_letters WHERE id <= ?", (last_id,))
        return evicted, freed

    def _note_evicted(self, evicted: int) -> None:
        self.evicted += evicted
        now = time.monotonic()
        if now - self._evicted_logged_at >= _EVICTION_LOG_EVERY_S:
            self._evicted_logged_at = now
            log.warning(
                "dead-letter store full (%d letters, %d bytes; limits [spool] "
                "deadletter_max_records %d, deadletter_max_bytes %d): %d oldest letters "
                "deleted since start",
                self._rows,
                self._bytes,
                self._max_records,
                self._max_bytes,
                self.evicted,
            )

    def count(self, reason: str | None = None) -> int:
        if reason is None:
            row = self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()
        else:
            row = self._db.execute(
                "SELECT COUNT(*) FROM dead_letters WHERE reason = ?", (reason,)
            ).fetchone()
        return int(row[0])

    def counts_by_reason(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason ORDER BY reason"
        )
        return {reason: int(n) for reason, n in rows}

    def latest(self, limit: int = 20) -> list[tuple[int, DeadLetter]]:
        rows = self._db.execute(_SELECT + " ORDER BY id DESC LIMIT ?", (limit,))
        return [(row[0], DeadLetter(*row[1:])) for row in rows]

    def get(self, letter_id: int) -> DeadLetter | None:
        row = self._db.execute(_SELECT + " WHERE id = ?", (letter_id,)).fetchone()
        return DeadLetter(*row[1:]) if row else None

    def select(
        self, reason: str | None, profile_id: str | None, after_id: int, limit: int
    ) -> list[tuple[int, DeadLetter]]:
        """Oldest first from `after_id` on, optionally only one reason and/or profile."""
        rows = self._db.execute(
            _SELECT + " WHERE id > ?"
            " AND (? IS NULL OR reason = ?) AND (? IS NULL OR profile_id = ?)"
            " ORDER BY id LIMIT ?",
            (after_id, reason, reason, profile_id, profile_id, limit),
        )
        return [(row[0], DeadLetter(*row[1:])) for row in rows]

    def remove(self, letter_ids: list[int]) -> None:
        ids = [(i,) for i in letter_ids]

        def delete(db: sqlite3.Connection) -> tuple[int, int]:
            size = 0
            for (letter_id,) in ids:
                row = db.execute(
                    "SELECT length(topic) + length(payload) + length(detail) FROM dead_letters"
                    " WHERE id = ?",
                    (letter_id,),
                ).fetchone()
                if row is not None:
                    db.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
                    size += row[0]
            return db.total_changes, size

        with self._lock:
            before = self._db.total_changes
            total_changes, size = run_transaction(self._db, delete)
            self._rows -= total_changes - before
            self._bytes -= size

    def close(self) -> None:
        self.storage.close()  # first: a commit waiting for space gives up, releasing the lock
        with self._lock:
            self._db.close()


def _size(letter: DeadLetter) -> int:
    """What the size queries measure: SQLite's length() counts characters of text, bytes of a
    blob."""
    return len(letter.topic) + len(letter.payload) + len(letter.detail)


def _connect(path: Path) -> sqlite3.Connection:
    # check_same_thread=False: the pipeline commits from one worker thread at a time.
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
    except sqlite3.Error:
        db.close()
        raise
    return db
