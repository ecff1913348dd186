"""The dead-letter store: every message the gateway could not turn into points, kept with why.

SQLite in WAL mode in the state directory: one file, crash-safe, readable with any SQLite tool,
and easy to query by reason or profile for inspection and replay. Records are added in group
commits (one transaction per batch) before the batch's messages are acknowledged, so a message
is never acknowledged unless it is either in InfluxDB or in here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

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

_SELECT = (
    "SELECT id, received_ns, topic, payload, reason, detail, profile_id, database,"
    " retention_policy FROM dead_letters"
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_ns: int
    topic: str
    payload: bytes
    reason: str
    detail: str = ""
    profile_id: str | None = None
    # Where line protocol was headed, for letters that hold lines (topic ""), not a message.
    database: str | None = None
    retention_policy: str | None = None

    @property
    def holds_lines(self) -> bool:
        """True for lines InfluxDB refused or an expired spool batch, False for a message."""
        return not self.topic


class DeadLetterStore:
    """Bounded by row count: the oldest records go first when `max_records` is exceeded."""

    def __init__(self, path: Path, max_records: int = 1_000_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._max_records = max_records
        # check_same_thread=False: the pipeline commits from one worker thread at a time.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Stores written by an older version lack the destination columns."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(dead_letters)")}
        for column in ("database", "retention_policy"):
            if column not in present:
                self._db.execute(f"ALTER TABLE dead_letters ADD COLUMN {column} TEXT")

    def add(self, letters: list[DeadLetter]) -> None:
        """Append and fsync in one transaction (blocking: call it from a worker thread)."""
        if not letters:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT INTO dead_letters (received_ns, topic, payload, reason, detail,"
                " profile_id, database, retention_policy) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
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
                ],
            )
            self._db.execute(
                "DELETE FROM dead_letters WHERE id <= (SELECT MAX(id) FROM dead_letters) - ?",
                (self._max_records,),
            )

    def _transaction(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

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
        with self._transaction():
            self._db.executemany(
                "DELETE FROM dead_letters WHERE id = ?", [(i,) for i in letter_ids]
            )

    def close(self) -> None:
        self._db.close()
