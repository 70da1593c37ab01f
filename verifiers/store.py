"""A verifier's local state: accepted ``jti``s, scene state, the usage outbox.

Two stores with one interface. :class:`MemoryStore` keeps everything in
bounded memory. :class:`SqliteStore` keeps it in one SQLite file, so a
verifier reopened on that file (also after ``kill -9``) remembers what it saw
and loses no usage record.

Durability without an fsync per scan: the file runs in WAL mode with
``synchronous=NORMAL``. Each decision is one transaction (replay record,
scene state, usage record) whose COMMIT appends it to the write-ahead log
before :meth:`OfflineVerifier.verify` returns: the data is in the operating
system's hands, so killing the process loses nothing. SQLite fsyncs the log
at checkpoints; only a power cut or kernel crash can lose the last
transactions since then, and it can never leave a half-written decision.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from .errors import StoreError
from .scenes.base import StateWrite

DEFAULT_MAX_JTIS = 1_000_000
DEFAULT_MAX_RECORDS = 1_000_000
PURGE_EVERY = 1000


class Transaction(Protocol):
    def jti_seen(self, jti: str) -> bool: ...

    def get(self, key: str) -> Any: ...

    def save(
        self,
        record: dict[str, Any],
        *,
        jti: str | None = None,
        jti_expires_at: int = 0,
        writes: Iterable[StateWrite] = (),
    ) -> None: ...


class Store(Protocol):
    def transaction(self, now: float) -> Any: ...

    def pending_records(self, limit: int) -> list[dict[str, Any]]: ...

    def mark_synced(self, record_ids: Iterable[str]) -> None: ...

    def get_meta(self, key: str) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    def close(self) -> None: ...


class MemoryStore:
    """Everything in memory, bounded: the oldest-expiring ``jti`` goes first."""

    def __init__(self, *, max_jtis: int = DEFAULT_MAX_JTIS, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        self.max_jtis = max_jtis
        self.max_records = max_records
        self.dropped_records = 0
        self._lock = threading.Lock()
        self._jtis: dict[str, int] = {}
        self._jti_expiry: list[tuple[int, str]] = []
        self._state: dict[str, tuple[Any, int]] = {}
        self._outbox: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._meta: dict[str, Any] = {}
        self._now = 0.0

    @contextmanager
    def transaction(self, now: float) -> Iterator[MemoryStore]:
        with self._lock:
            self._now = now
            yield self

    def jti_seen(self, jti: str) -> bool:
        return jti in self._jtis

    def get(self, key: str) -> Any:
        entry = self._state.get(key)
        if entry is None or entry[1] < self._now:
            return None
        return entry[0]

    def save(
        self,
        record: dict[str, Any],
        *,
        jti: str | None = None,
        jti_expires_at: int = 0,
        writes: Iterable[StateWrite] = (),
    ) -> None:
        if jti is not None:
            self._remember(jti, jti_expires_at)
        for write in writes:
            if write.value is None:
                self._state.pop(write.key, None)
            else:
                self._state[write.key] = (write.value, write.expires_at)
        self._outbox[record["id"]] = record
        if len(self._outbox) > self.max_records:
            self._outbox.popitem(last=False)
            self.dropped_records += 1

    def _remember(self, jti: str, expires_at: int) -> None:
        self._jtis[jti] = expires_at
        heapq.heappush(self._jti_expiry, (expires_at, jti))
        heap = self._jti_expiry
        # Forget codes that can no longer be presented (two per insert keeps
        # up with any rate), then, if still over the bound, the oldest expiring.
        for _ in range(2):
            if heap and heap[0][0] < self._now:
                self._jtis.pop(heapq.heappop(heap)[1], None)
        while len(self._jtis) > self.max_jtis:
            self._jtis.pop(heapq.heappop(heap)[1], None)
        if len(self._state) > self.max_jtis:
            self._state = {k: v for k, v in self._state.items() if v[1] >= self._now}

    def pending_records(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            return [record for _, record in zip(range(limit), self._outbox.values())]

    def mark_synced(self, record_ids: Iterable[str]) -> None:
        with self._lock:
            for record_id in record_ids:
                self._outbox.pop(record_id, None)

    def get_meta(self, key: str) -> Any:
        return self._meta.get(key)

    def set_meta(self, key: str, value: Any) -> None:
        self._meta[key] = value

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_jti (jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_jti_expiry ON seen_jti (expires_at);
CREATE TABLE IF NOT EXISTS scene_state (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_id ON outbox (id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""


class SqliteStore:
    """The same interface over one SQLite file (one verifier process per file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            # A file damaged past its first page opens and fails later, mid-scan: find out now.
            (check,) = self._db.execute("PRAGMA quick_check(1)").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(check)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the verifier store: {exc}") from exc
        self._lock = threading.Lock()
        self._now = 0.0
        self._since_purge = PURGE_EVERY

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def transaction(self, now: float) -> Iterator[SqliteStore]:
        with self._immediate():
            self._now = now
            yield self
        self._since_purge += 1
        if self._since_purge >= PURGE_EVERY:
            self._since_purge = 0
            with self._immediate() as db:
                db.execute("DELETE FROM seen_jti WHERE expires_at < ?", (int(now),))
                db.execute("DELETE FROM scene_state WHERE expires_at < ?", (int(now),))

    def jti_seen(self, jti: str) -> bool:
        return self._db.execute("SELECT 1 FROM seen_jti WHERE jti = ?", (jti,)).fetchone() is not None

    def get(self, key: str) -> Any:
        row = self._db.execute(
            "SELECT value FROM scene_state WHERE key = ? AND expires_at >= ?", (key, int(self._now))
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def save(
        self,
        record: dict[str, Any],
        *,
        jti: str | None = None,
        jti_expires_at: int = 0,
        writes: Iterable[StateWrite] = (),
    ) -> None:
        db = self._db
        if jti is not None:
            db.execute("INSERT OR REPLACE INTO seen_jti VALUES (?, ?)", (jti, jti_expires_at))
        for write in writes:
            if write.value is None:
                db.execute("DELETE FROM scene_state WHERE key = ?", (write.key,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO scene_state VALUES (?, ?, ?)",
                    (write.key, json.dumps(write.value, separators=(",", ":")), write.expires_at),
                )
        db.execute(
            "INSERT INTO outbox (id, record) VALUES (?, ?)",
            (record["id"], json.dumps(record, separators=(",", ":"), ensure_ascii=False)),
        )

    def pending_records(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [json.loads(row[0]) for row in rows]

    def mark_synced(self, record_ids: Iterable[str]) -> None:
        """The service acknowledged these records: they leave the outbox."""
        with self._immediate() as db:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(record_id,) for record_id in record_ids])

    def get_meta(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self._immediate() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def close(self) -> None:
        with self._lock:
            self._db.close()
