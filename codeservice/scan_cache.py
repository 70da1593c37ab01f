"""The verify path's per-process copy of the scanners and the revocation list. No Flask.

A decision needs the scanner a key belongs to and whether the code's
resident (``sub``) or credential (``cti``) is revoked. Reading those per
request cost two of PostgreSQL's round trips per decision; they change
rarely. Each process keeps them in memory (:class:`ScanDirectory`) and knows
they are out of date by one row, ``scan_directory_version``, which database
triggers change with every change to the scanners or to a revocation
(migration 0009), whatever makes it.

**The bound.** The copy is checked (that row read, one round trip) when it is
older than :data:`MAX_AGE_SECONDS`, and loaded again when the row changed.
So a revocation (a scanner's key, a resident, a device or paper credential)
committed at time R is applied by every decision that starts after
R + :data:`MAX_AGE_SECONDS` (2 s), on every process of every instance: such a
decision either reads the row itself or uses a copy checked after R. A change
committed through this process's own engine (the CLI, the API, a test's
session) is applied by its next decision at once.

A key the copy does not know is looked up in the database (a scanner added
since is found at once; a wrong key costs that one read, as before).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event

from .scan_store import DirectoryRows, ScanConnection, ScannerRow

MAX_AGE_SECONDS = 2.0
"""How long a process uses its copy before it reads the version row again: the revocation bound (README)."""
WATCHED_TABLES = frozenset({"scanners", "residents", "credentials"})
"""Tables whose changes, committed through this process's engine, make its copy checked at the next decision."""


class RevokedIds:
    """``x in revoked``, over a set the verifier asks and never copies (it copies what it can iterate)."""

    __slots__ = ("_ids",)

    def __init__(self, ids: frozenset[str]) -> None:
        self._ids = ids

    def __contains__(self, item: object) -> bool:
        return item in self._ids


class ScanDirectory:
    """One process's copy of the active scanners and the revocation list, refreshed by version.

    Thread-safe: a refresh happens under a lock (one thread reads the row,
    the others wait for it); the copy itself is replaced whole, never changed
    in place, except that a scanner found by :meth:`scanner` joins it.
    """

    def __init__(self, *, max_age: float = MAX_AGE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._rows: DirectoryRows | None = None
        self._checked_at = -math.inf
        self._changed_here = False

    def fresh(self, connection: ScanConnection) -> DirectoryRows:
        """The copy, checked against the version row if older than ``max_age`` (or changed by this process)."""
        rows = self._rows
        if rows is not None and not self._changed_here and self._clock() - self._checked_at < self.max_age:
            return rows
        with self._lock:
            started = self._clock()  # before the row is read: the copy is at least this new
            rows = self._rows
            if rows is not None and not self._changed_here and started - self._checked_at < self.max_age:
                return rows  # another thread checked it meanwhile
            self._changed_here = False  # a change committed from now on sets it again
            version = connection.directory_version()
            if rows is None or version != rows.version:
                rows = self._rows = connection.directory(version, datetime.now(UTC))
            self._checked_at = started
            return rows

    def scanner(self, connection: ScanConnection, rows: DirectoryRows, key_hash: str) -> ScannerRow | None:
        """The active scanner whose key hashes to ``key_hash`` (``rows``: :meth:`fresh`'s); None for none."""
        scanner = rows.scanners.get(key_hash)
        if scanner is None:
            scanner = connection.scanner(key_hash)  # added since the copy was loaded, or no such key
            if scanner is None or scanner.revoked_at is not None:
                return None
            rows.scanners[key_hash] = scanner  # until the next load
        return scanner

    def changed_here(self) -> None:
        """This process committed a change to the scanners or a revocation: check at the next decision."""
        self._changed_here = True

    def watch(self, engine: Engine) -> None:
        """Call :meth:`changed_here` when a transaction on ``engine`` that wrote a watched table commits."""
        wrote = f"codeservice.scan_cache.wrote.{id(self)}"  # this directory's own note on the connection

        def executed(connection: Any, statement: Any, *_args: Any) -> None:
            table = getattr(statement, "table", None)
            if getattr(statement, "is_dml", False) and getattr(table, "name", None) in WATCHED_TABLES:
                connection.info[wrote] = True

        def committed(connection: Any) -> None:
            if connection.info.pop(wrote, False):
                self.changed_here()

        event.listen(engine, "after_execute", executed)
        event.listen(engine, "commit", committed)
        event.listen(engine, "rollback", lambda connection: connection.info.pop(wrote, None))
