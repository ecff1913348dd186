"""Durable store-and-forward: batches InfluxDB cannot take yet, and first receive times.

Why SQLite in WAL mode rather than our own segment files: a spooled batch is one transaction,
so a batch is either wholly in the spool or not at all; a process killed mid-write leaves a
torn frame at the end of the write-ahead log, which SQLite detects by its checksum and skips
on the next open (the committed batches before it stay). Reading the oldest batch and deleting
it after InfluxDB accepted it are single indexed statements, and operators can inspect the
file with any SQLite tool. The cost is one fsync per spooled batch (`synchronous=FULL`), i.e.
per few thousand points: group commit, not a sync per message.

All methods block; the pipeline calls them from a worker thread, one call at a time.

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
from dataclasses import dataclass
from pathlib import Path

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

ReceiptKey = tuple[str, int, bytes]
"""(topic, MQTT packet id, payload digest): identifies one delivery and its redeliveries."""


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
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self._db = _open(path)
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
            self._insert_batch(now, database, rp, lines, body)
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
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT INTO batches (spooled_ns, database, retention_policy, points, bytes, lines)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now, database, rp, len(lines), len(body), body),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def oldest(self) -> SpooledBatch | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, spooled_ns, database, retention_policy, lines"
                " FROM batches ORDER BY id LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        batch_id, spooled_ns, database, rp, body = row
        lines = bytes(body).decode().split("\n")
        return SpooledBatch(batch_id, spooled_ns, database, rp, lines, len(body))

    def remove(self, batch: SpooledBatch) -> None:
        """Forget a batch InfluxDB accepted (or that moved to the dead-letter store)."""
        with self._lock:
            self._db.execute("DELETE FROM batches WHERE id = ?", (batch.id,))
            row = self._db.execute("SELECT MIN(spooled_ns) FROM batches").fetchone()
            depth = self._depth
            self._depth = SpoolDepth(
                max(0, depth.batches - 1),
                max(0, depth.points - len(batch.lines)),
                max(0, depth.bytes - batch.bytes),
                row[0] or 0,
            )

    # ---- receive times ------------------------------------------------------------------------

    def record_receive_times(self, receipts: list[tuple[ReceiptKey, int]]) -> None:
        """Durably remember first receive times (one transaction, one fsync)."""
        if not receipts:
            return
        now = time.time_ns()
        rows = [(topic, pid, digest, t, now) for (topic, pid, digest), t in receipts]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO receive_times"
                    " (topic, packet_id, digest, received_ns, recorded_ns) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM receive_times WHERE recorded_ns < ?", (recorded_before_ns,)
            )
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


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
        db.executescript(_SCHEMA)
        db.execute("SELECT COUNT(*) FROM batches").fetchone()
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db
