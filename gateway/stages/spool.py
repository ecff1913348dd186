"""Durable store-and-forward: batches InfluxDB cannot take yet, and first receive times.

Why SQLite in WAL mode rather than our own segment files: a spooled batch is one transaction,
so a batch is either wholly in the spool or not at all; a process killed mid-write leaves a
torn frame at the end of the write-ahead log, which SQLite detects by its checksum and skips
on the next open (the committed batches before it stay). Reading the oldest batch and deleting
it after InfluxDB accepted it are single indexed statements, and operators can inspect the
file with any SQLite tool. The cost is one fsync per spooled batch (`synchronous=FULL`), i.e.
per few thousand points: group commit, not a sync per message.

All methods block; the pipeline calls them from a worker thread, one call at a time.
A full disk (gateway/stages/storage.py): `append` answers False, as when the spool is full, so
the writer keeps trying InfluxDB and acknowledges nothing until one of them takes the batch;
`remove` and `record_receive_times` wait for space. `storage.disk_full` says why for /readyz.

Receive times: a reading whose device sends no timestamp is stamped with the gateway's receive
time. If the gateway crashes after writing such a point but before acknowledging the message,
the broker redelivers it (MQTT DUP flag) and a fresh receive time would store the reading twice.
So the pipeline records (topic, packet id, payload digest) -> first receive time here before
the points leave the process, and a redelivered message with the same key gets its first
receive time back: the same point, which InfluxDB overwrites instead of doubling.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.model import ReceiptKey
from gateway.stages.storage import (
    StorageState,
    create_private,
    is_storage_full,
    open_database,
    run_transaction,
)

log = logging.getLogger(__name__)

SPOOL_FILE = "spool.sqlite3"
"""Its name inside the `[spool] dir`."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spooled_ns INTEGER NOT NULL,
    database TEXT,
    retention_policy TEXT,
    points INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    lines BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS receive_times (
    topic TEXT NOT NULL,
    packet_id INTEGER NOT NULL,
    digest BLOB NOT NULL,
    received_ns INTEGER NOT NULL,
    recorded_ns INTEGER NOT NULL,
    PRIMARY KEY (topic, packet_id)
);
CREATE INDEX IF NOT EXISTS receive_times_recorded ON receive_times (recorded_ns);
"""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    id: int
    spooled_ns: int
    database: str | None
    retention_policy: str | None
    lines: list[str]
    bytes: int


@dataclass(frozen=True, slots=True)
class SpoolDepth:
    batches: int
    points: int
    bytes: int
    oldest_ns: int  # 0 when empty


class Spool:
    """FIFO of line-protocol batches on disk, bounded by `max_bytes` of line protocol."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        create_private(path)
        self.path = path
        self.max_bytes = max_bytes
        self.storage = StorageState("spool")
        self._db = open_database(path, _open)
        # The live writer and the replayer call from different worker threads.
        self._lock = threading.Lock()
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(points), 0), COALESCE(SUM(bytes), 0),"
            " COALESCE(MIN(spooled_ns), 0) FROM batches"
        ).fetchone()
        self._depth = SpoolDepth(*row)

    @property
    def depth(self) -> SpoolDepth:
        return self._depth

    def append(self, database: str | None, rp: str | None, lines: list[str]) -> bool:
        """Store one batch durably; False (and nothing stored) when it would exceed max_bytes."""
        body = "\n".join(lines).encode()
        depth = self._depth
        if depth.bytes + len(body) > self.max_bytes:
            return False
        now = time.time_ns()
        with self._lock:
            try:
                self._insert_batch(now, database, rp, lines, body)
            except sqlite3.OperationalError as exc:
                if not is_storage_full(exc):
                    raise
                self.storage.note_refused(self.path, exc)
                return False
            self.storage.note_written()
            depth = self._depth
            self._depth = SpoolDepth(
                depth.batches + 1,
                depth.points + len(lines),
                depth.bytes + len(body),
                depth.oldest_ns or now,
            )
        return True

    def _insert_batch(
        self, now: int, database: str | None, rp: str | None, lines: list[str], body: bytes
    ) -> None:
        run_transaction(
            self._db,
            lambda db: db.execute(
                "INSERT INTO batches (spooled_ns, database, retention_policy, points, bytes, lines)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now, database, rp, len(lines), len(body), body),
            ),
        )

    def oldest(self, max_points: int = 1, after_id: int = 0) -> list[SpooledBatch]:
        """The oldest batches after `after_id` that share one destination, oldest first.

        As many as fit in `max_points` lines, but at least one, so the replay can send them in
        one request; [] when there are none. The sizes are read before the bodies, so no body
        is read that does not fit."""
        with self._lock:
            # A cursor steps lazily, so this reads only the heads up to the first that does
            # not fit, not the whole table.
            heads = self._db.execute(
                "SELECT id, database, retention_policy, points FROM batches WHERE id > ?"
                " ORDER BY id",
                (after_id,),
            )
            ids = _run_of_one_destination(heads, max_points)
            heads.close()
            if not ids:
                return []
            rows = self._db.execute(
                "SELECT id, spooled_ns, database, retention_policy, lines FROM batches"
                " WHERE id >= ? AND id <= ? ORDER BY id",
                (ids[0], ids[-1]),
            ).fetchall()
        return [
            SpooledBatch(
                batch_id, spooled_ns, database, rp, bytes(body).decode().split("\n"), len(body)
            )
            for batch_id, spooled_ns, database, rp, body in rows
        ]

    def remove(self, batches: list[SpooledBatch]) -> None:
        """Forget batches InfluxDB accepted (or that moved to the dead-letter store).

        One transaction, so one fsync for any number of batches."""
        if not batches:
            return
        ids = [(batch.id,) for batch in batches]
        self.storage.retry_until_written(self.path, lambda: self._delete(ids))
        with self._lock:
            # Ids grow with time, so the oldest is the lowest id: an index lookup, not a scan.
            row = self._db.execute("SELECT spooled_ns FROM batches ORDER BY id LIMIT 1").fetchone()
            depth = self._depth
            self._depth = SpoolDepth(
                max(0, depth.batches - len(batches)),
                max(0, depth.points - sum(len(batch.lines) for batch in batches)),
                max(0, depth.bytes - sum(batch.bytes for batch in batches)),
                row[0] if row else 0,
            )

    def _delete(self, ids: list[tuple[int]]) -> None:
        with self._lock:
            run_transaction(
                self._db, lambda db: db.executemany("DELETE FROM batches WHERE id = ?", ids)
            )

    # ---- receive times ------------------------------------------------------------------------

    def record_receive_times(self, receipts: list[tuple[ReceiptKey, int]]) -> None:
        """Durably remember first receive times (one transaction, one fsync)."""
        if not receipts:
            return
        now = time.time_ns()
        rows = [(topic, pid, digest, t, now) for (topic, pid, digest), t in receipts]
        self.storage.retry_until_written(self.path, lambda: self._insert_receive_times(rows))

    def _insert_receive_times(self, rows: list[tuple[str, int, bytes, int, int]]) -> None:
        with self._lock:
            run_transaction(
                self._db,
                lambda db: db.executemany(
                    "INSERT OR REPLACE INTO receive_times"
                    " (topic, packet_id, digest, received_ns, recorded_ns) VALUES (?, ?, ?, ?, ?)",
                    rows,
                ),
            )

    def first_receive_time(self, key: ReceiptKey) -> int | None:
        topic, packet_id, digest = key
        with self._lock:
            row = self._db.execute(
                "SELECT received_ns FROM receive_times"
                " WHERE topic = ? AND packet_id = ? AND digest = ?",
                (topic, packet_id, digest),
            ).fetchone()
        return int(row[0]) if row else None

    def forget_receive_times(self, recorded_before_ns: int) -> int:
        """Housekeeping: on a full disk nothing is forgotten this time (0)."""
        with self._lock:
            try:
                cursor = self._db.execute(
                    "DELETE FROM receive_times WHERE recorded_ns < ?", (recorded_before_ns,)
                )
            except sqlite3.OperationalError as exc:
                if not is_storage_full(exc):
                    raise
                self.storage.note_refused(self.path, exc)
                return 0
        return cursor.rowcount

    def close(self) -> None:
        self.storage.close()  # first: a write waiting for space gives up, releasing the lock
        with self._lock:
            self._db.close()


def _run_of_one_destination(
    heads: Iterable[tuple[int, str | None, str | None, int]], max_points: int
) -> list[int]:
    """Ids of the leading batches bound for the first one's destination within max_points."""
    ids: list[int] = []
    destination: tuple[str | None, str | None] | None = None
    total = 0
    for batch_id, database, rp, points in heads:
        if destination is None:
            destination = (database, rp)
        elif (database, rp) != destination or total + points > max_points:
            break
        ids.append(batch_id)
        total += points
    return ids


def _open(path: Path) -> sqlite3.Connection:
    """Open (and if needed create) the spool; a file SQLite cannot read is moved aside.

    A torn last write needs no handling here: SQLite ignores WAL frames whose checksum does not
    match. Only a file that is not an SQLite database at all (overwritten, truncated header)
    is renamed to `<name>.unreadable-<time>` so the gateway can start; it is logged loudly.
    """
    try:
        return _connect(path)
    except sqlite3.DatabaseError as exc:
        if not _is_damaged(exc):
            # Read-only directory, full disk, locked file: the file may be fine, so it stays
            # where it is and start-up fails with SQLite's reason.
            raise
        aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
        log.error("spool %s is unreadable (%s); moved to %s, starting empty", path, exc, aside)
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            sidecar = path.with_name(path.name + suffix)
            if sidecar.exists():
                sidecar.rename(aside.with_name(aside.name + suffix))
        return _connect(path)


_CACHE_KIB = 256
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def _is_damaged(exc: sqlite3.DatabaseError) -> bool:
    """True when the file's content is broken, as opposed to the file being out of reach."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # raised by the module itself rather than the SQLite library
        return not isinstance(exc, sqlite3.OperationalError)
    return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _connect(path: Path) -> sqlite3.Connection:
    # check_same_thread=False: the pipeline calls from worker threads, one call at a time.
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        # Batches are written once and read once, in order, so SQLite's page cache (2 MB by
        # default) would only hold pages nobody reads again; the receive-time index's inner
        # pages fit in this. Every megabyte counts for a gateway's RSS during an outage.
        db.execute(f"PRAGMA cache_size={-_CACHE_KIB}")
        db.executescript(_SCHEMA)
        db.execute("SELECT COUNT(*) FROM batches").fetchone()
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db
