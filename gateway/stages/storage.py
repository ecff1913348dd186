"""What the spool and the dead-letter store share: their SQLite files, and a full disk.

A full disk is a state of the gateway, not a crash. SQLite answers a write it cannot make with
SQLITE_FULL ("database or disk is full"), or with SQLITE_IOERR when the file system refuses an
extension or a sync; the transaction is then already rolled back. A store that gets such an
answer records it in its `StorageState`, which the pipeline reads for /readyz, logs it at most
once a minute with SQLite's own text, and waits and tries again: the batch is not durable, so
its messages are not acknowledged, the writer stops, intake pauses and the broker keeps
everything. The first write that succeeds again clears the state: recovery needs no restart.
`close()` ends the wait (raising StorageFullError), so SIGTERM still ends the process.
A store that is full by its own bounds and configured to wait rather than evict (the dead-letter
store with `[spool] deadletter_when_full = "pause"`) raises `StoreAtBoundsError` and goes
through the same state: room made in the store ends it as space on the disk does.

Opening needs space too: a WAL database's shared-memory file (32 KiB) is created at open,
so after a clean stop on a full disk the stores could not even open, and the gateway would
crash-loop. So the state directory keeps a reserve file (`RESERVE_FILE`, 1 MiB, made when
there is room): a store that cannot open for lack of space deletes it and opens in its room,
then runs in the disk-full state above. The next start with room makes a new one.

The files are created 0600: they hold payloads, possibly personal data, and nothing but the
gateway's own user needs to read them (outside systemd, whose StateDirectory does this too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gateway.errors import StorageFullError

log = logging.getLogger(__name__)

_T = TypeVar("_T")

RETRY_S = 1.0
"""How often a store retries a write the disk refused."""
LOG_EVERY_S = 60.0
STALE_AFTER_S = 30.0
"""A disk-full state no write has confirmed for this long is no longer reported: nothing is
waiting on that store (e.g. the spool while InfluxDB took every batch)."""

_SQLITE_FULL = 13
_SQLITE_IOERR = 10
_FILE_MODE = 0o600


def is_storage_full(exc: sqlite3.Error) -> bool:
    """True when SQLite could not write for lack of space (or the file system refused)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_FULL, _SQLITE_IOERR)
    text = str(exc)
    return "disk is full" in text or "disk I/O error" in text


class StoreAtBoundsError(Exception):
    """A write the store refuses because it is at its configured bounds: waited out like a full
    disk. `remedy` says how to make room (the log line's "what to do")."""

    def __init__(self, problem: str, remedy: str) -> None:
        super().__init__(problem)
        self.remedy = remedy


class StorageState:
    """Whether a store's last write failed for lack of space, why, and since when.

    Written from the store's worker thread and read on the event loop: single attribute
    assignments, so the reader sees either the old or the new state."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.problem: str | None = None  # SQLite's text of the last refused write
        self.since_s = 0.0
        self.failed_at_s = 0.0
        self.refused_writes = 0
        self._logged_at_s = -LOG_EVERY_S
        self._closing = threading.Event()

    @property
    def disk_full(self) -> str | None:
        """`<store>: <SQLite's text> for Ns` while writes are refused, else None."""
        problem, now = self.problem, time.monotonic()
        if problem is None or now - self.failed_at_s > STALE_AFTER_S:
            return None
        return f"{self.name}: cannot write ({problem}) for {now - self.since_s:.0f}s"

    def note_refused(self, path: Path, exc: sqlite3.Error | StoreAtBoundsError) -> None:
        now = time.monotonic()
        if self.problem is None:
            self.since_s = now
        self.problem, self.failed_at_s = str(exc), now
        self.refused_writes += 1
        if now - self._logged_at_s >= LOG_EVERY_S:
            self._logged_at_s = now
            log.error(
                "%s: %s (%s): not acknowledging new messages, intake paused; the broker keeps "
                "them. %s; the gateway resumes by itself (%d writes refused)",
                self.name,
                exc,
                type(exc).__name__,
                exc.remedy
                if isinstance(exc, StoreAtBoundsError)
                else f"Free space in {path.parent}",
                self.refused_writes,
            )

    def note_written(self) -> None:
        if self.problem is not None:
            log.warning(
                "%s: writable again after %.0fs; acknowledging again",
                self.name,
                time.monotonic() - self.since_s,
            )
            self.problem = None
            self._logged_at_s = -LOG_EVERY_S

    def retry_until_written(self, path: Path, write: Callable[[], _T]) -> _T:
        """`write()` (one transaction), repeated while the disk is full (or the store is:
        StoreAtBoundsError); blocking.

        Raises StorageFullError once `close()` was called: the pipeline is stopping."""
        while True:
            try:
                result = write()
            except (sqlite3.OperationalError, StoreAtBoundsError) as exc:
                if isinstance(exc, sqlite3.OperationalError) and not is_storage_full(exc):
                    raise
                self.note_refused(path, exc)
                if self._closing.wait(RETRY_S):
                    raise StorageFullError(f"{path}: {exc}") from exc
                continue
            self.note_written()
            return result

    def close(self) -> None:
        """End any retry in progress (the process is stopping)."""
        self._closing.set()


def run_transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T]) -> _T:
    """`work(db)` in one IMMEDIATE transaction, committed (one fsync) or rolled back.

    On an error SQLite may already have rolled the transaction back (SQLITE_FULL does): a
    ROLLBACK then fails with "no transaction is active" and would hide the real error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


RESERVE_FILE = "reserve.bin"
RESERVE_BYTES = 1024 * 1024


def open_database(path: Path, connect: Callable[[Path], sqlite3.Connection]) -> sqlite3.Connection:
    """`connect(path)`; on a full disk, once more after giving up the reserve file."""
    try:
        db = connect(path)
    except sqlite3.OperationalError as exc:
        reserve = path.parent / RESERVE_FILE
        if not is_storage_full(exc) or not reserve.exists():
            raise
        log.error(
            "%s: %s while opening; the disk is full: the reserve file %s is deleted to open "
            "the store, intake stays paused until there is space",
            path,
            exc,
            reserve,
        )
        reserve.unlink()
        return connect(path)
    _keep_reserve(path.parent / RESERVE_FILE)
    return db


def _keep_reserve(reserve: Path) -> None:
    """Make the reserve file if it is missing and there is room for it (else try next time)."""
    if reserve.exists():
        return
    try:
        fd = os.open(reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    except OSError:
        return  # another store made it just now, or the directory is read-only
    try:
        block = bytes(64 * 1024)  # written, not sparse: the blocks must be taken
        written = 0
        while written < RESERVE_BYTES:  # a write near a full disk may be short: no error yet
            written += os.write(fd, block)
        os.fsync(fd)
    except OSError:
        reserve.unlink(missing_ok=True)  # no room: no reserve
    finally:
        os.close(fd)


def create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (its -wal and -shm files take the
    database file's mode), and tighten an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not ours to fix here: a read-only directory or a file of another user is reported by
    # SQLite's own error when the store opens it.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, _FILE_MODE))
    for suffix in ("", "-wal", "-shm"):
        existing = path.with_name(path.name + suffix)
        with contextlib.suppress(OSError):
            if existing.stat().st_mode & 0o077:
                existing.chmod(_FILE_MODE)
