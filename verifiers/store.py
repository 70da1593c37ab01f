"""A verifier's local state: accepted ``jti``s, scene state, the usage outbox.

Two protocols, two halves of a verifier's state: :class:`DecisionStore`,
the one transaction per decision a verification needs, and :class:`Outbox`,
what waits for the next sync (the usage records, the last key set and
revocation list). The service's verifier needs only the first (its store
writes to the shared database). Two stores implement both (:class:`Store`):
:class:`MemoryStore` keeps everything in bounded memory.
:class:`SqliteStore` keeps it in one SQLite file, so a verifier reopened on
that file (also after ``kill -9``) remembers what it saw and loses no usage
record.

Durability without a commit, let alone an fsync, per scan: each decision
(its usage record, the accepted ``jti``, the scene's state writes) is one
line appended to a journal file beside the database with a single
``write()`` before :meth:`OfflineVerifier.verify` returns. From then on the
kernel holds it: killing the process loses nothing. Journal lines move into
SQLite (WAL, ``synchronous=NORMAL``) in batches, one transaction per batch
of up to :data:`BATCH_SIZE` decisions or every :data:`BATCH_SECONDS`, after
which the journal is emptied; opening the store replays whatever the journal
still holds, idempotently (record ids are unique, state writes replay in
order). Only a power cut or kernel crash can lose the last moments the
operating system had not written out, and a torn last line is ignored, so
there is never half a decision.
"""

from __future__ import annotations

import functools
import heapq
import json
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeGuard, runtime_checkable

from .errors import StoreError
from .scenes.base import StateWrite

DEFAULT_MAX_JTIS = 1_000_000
DEFAULT_MAX_RECORDS = 1_000_000
PURGE_EVERY = 1000


class Transaction(Protocol):
    """One decision's reads and writes, inside :meth:`DecisionStore.transaction`."""

    def claim_jti(self, jti: str, expires_at: int) -> bool:
        """True when ``jti`` was never accepted; the claim holds if the transaction saves it."""
        ...

    def get(self, key: str) -> Any: ...

    def save(
        self,
        record: dict[str, Any],
        *,
        jti: str | None = None,
        jti_expires_at: int = 0,
        writes: Iterable[StateWrite] = (),
    ) -> None: ...


class DecisionStore(Protocol):
    """What a verification needs: one transaction per decision (replay check, scene state, usage record).

    All the service's verifier has (its store writes each record straight to
    the database); an offline verifier's store is also an :class:`Outbox`.

    A store whose class sets ``reads_ahead = True`` (the service's) yields
    transactions that are also :class:`ReadAhead`.
    """

    def transaction(self, now: float) -> AbstractContextManager[Transaction]: ...


class ReadAhead(Transaction, Protocol):
    """A transaction told, before the scene decides, every state key the scene will read.

    The verifier calls :meth:`read_ahead` once per accepted-so-far decision,
    after :meth:`~Transaction.claim_jti` and before the scene's first
    :meth:`~Transaction.get`, so that a store across a network can make the
    claim and read every key in one round trip. It may raise
    :class:`~verifiers.errors.Replayed` for a claim it finds taken then.
    """

    def read_ahead(self, keys: list[str]) -> None: ...


@runtime_checkable
class Outbox(Protocol):
    """What a verifier keeps between decisions for a later sync: the usage outbox and its metadata.

    The records waiting for the service, those it refused (set aside), and
    the key set and revocation list last installed (``get_meta``/``set_meta``),
    so that a verifier reopened on the store needs no network.
    """

    def pending_records(self, limit: int) -> list[dict[str, Any]]: ...

    def mark_synced(self, record_ids: Iterable[str]) -> None: ...

    def set_aside(self, record_id: str, reason: str, now: float) -> None: ...

    def set_aside_records(self, limit: int) -> list[dict[str, Any]]: ...

    def requeue_set_aside(self) -> int: ...

    def get_meta(self, key: str) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    def close(self) -> None: ...


class Store(DecisionStore, Outbox, Protocol):
    """Both halves: a verifier's whole local state (:class:`MemoryStore`, :class:`SqliteStore`)."""


@functools.lru_cache(maxsize=64)
def _is_outbox_type(store_type: type) -> bool:
    return issubclass(store_type, Outbox)  # once per class: a Protocol check walks every member


def has_outbox(store: DecisionStore) -> TypeGuard[Store]:
    """Whether ``store`` also keeps an outbox (decided by its class, so cheap per verifier)."""
    return _is_outbox_type(type(store))


class _InMemoryReads:
    """Replay checks and scene state read from memory: the part both stores share.

    A subclass keeps ``_jtis`` (jti -> expiry), ``_state`` (key -> (value,
    expiry)) and ``_lock``, and records writes in :meth:`save`.
    """

    _jtis: dict[str, int]
    _state: dict[str, tuple[Any, int]]
    _lock: Any
    _now: float

    def transaction(self, now: float) -> _Transaction:
        return _Transaction(self, now)

    def _after_decision(self, now: float) -> None:
        pass

    def jti_seen(self, jti: str) -> bool:
        return jti in self._jtis

    def claim_jti(self, jti: str, expires_at: int) -> bool:
        return jti not in self._jtis  # one decision at a time: save() records it

    def get(self, key: str) -> Any:
        entry = self._state.get(key)
        if entry is None or entry[1] < self._now:
            return None
        return entry[0]


class MemoryStore(_InMemoryReads):
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
        self._set_aside: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._meta: dict[str, Any] = {}
        self._now = 0.0

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
            return [record for _, record in zip(range(limit), self._outbox.values(), strict=False)]

    def pending_count(self) -> int:
        """How many records wait for the service (a sync's health report says so)."""
        with self._lock:
            return len(self._outbox)

    def mark_synced(self, record_ids: Iterable[str]) -> None:
        with self._lock:
            for record_id in record_ids:
                self._outbox.pop(record_id, None)

    def set_aside(self, record_id: str, reason: str, now: float) -> None:
        with self._lock:
            record = self._outbox.pop(record_id, None)
            if record is not None:
                self._set_aside[record_id] = {"record": record, "reason": reason, "set_aside_at": now}
                if len(self._set_aside) > self.max_records:  # bounded like the outbox
                    self._set_aside.popitem(last=False)
                    self.dropped_records += 1

    def set_aside_records(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for _, entry in zip(range(limit), self._set_aside.values(), strict=False)]

    def requeue_set_aside(self) -> int:
        with self._lock:
            count = len(self._set_aside)
            for record_id, entry in self._set_aside.items():
                self._outbox[record_id] = entry["record"]
            self._set_aside.clear()
            return count

    def get_meta(self, key: str) -> Any:
        return self._meta.get(key)

    def set_meta(self, key: str, value: Any) -> None:
        self._meta[key] = value

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_jti (jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scene_state (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS set_aside (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, record TEXT NOT NULL, reason TEXT NOT NULL,
    set_aside_at REAL NOT NULL
);
"""
BATCH_SIZE = 512
BATCH_SECONDS = 1.0
JOURNAL_SUFFIX = ".journal"


class SqliteStore(_InMemoryReads):
    """The same interface over one SQLite file and its journal (one verifier process per file).

    Reads come from an in-memory mirror of the unexpired ``jti``s and scene
    state, loaded when the store is opened; the files are the durable copy.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + JOURNAL_SUFFIX)
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
        self._lock = threading.RLock()
        self._now = 0.0
        self._since_purge = 0
        self._batch: list[dict[str, Any]] = []
        self._batch_started = 0.0
        self._jtis: dict[str, int] = dict(self._db.execute("SELECT jti, expires_at FROM seen_jti"))
        self._state: dict[str, tuple[Any, int]] = {
            key: (json.loads(value), expires_at)
            for key, value, expires_at in self._db.execute("SELECT key, value, expires_at FROM scene_state")
        }
        try:
            self._replay_journal()
            self._journal = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise StoreError(f"{self.journal_path}: cannot use the store's journal: {exc.strerror}") from exc

    # -- one decision ------------------------------------------------------

    def save(
        self,
        record: dict[str, Any],
        *,
        jti: str | None = None,
        jti_expires_at: int = 0,
        writes: Iterable[StateWrite] = (),
    ) -> None:
        entry = {
            "record": record,
            "jti": jti,
            "jti_expires_at": jti_expires_at,
            "writes": [[w.key, w.value, w.expires_at] for w in writes],
        }
        # ASCII escapes: whatever a third-party scene puts in its detail, the line is written.
        line = json.dumps(entry, separators=(",", ":")).encode("ascii") + b"\n"
        if os.write(self._journal, line) != len(line):  # pragma: no cover - a full disk
            raise StoreError(f"{self.journal_path}: short write; the disk may be full")
        self._apply_to_mirror(entry)
        if not self._batch:
            self._batch_started = self._now
        self._batch.append(entry)

    def _after_decision(self, now: float) -> None:
        if len(self._batch) >= BATCH_SIZE or now - self._batch_started >= BATCH_SECONDS:
            self.flush()
        self._since_purge += 1
        if self._since_purge >= PURGE_EVERY:
            self._since_purge = 0
            self._purge_expired(now)

    # -- batches -----------------------------------------------------------

    def flush(self) -> None:
        """Move the journal's decisions into SQLite in one transaction, then empty the journal."""
        with self._lock:
            if not self._batch:
                return
            with self._immediate() as db:
                _write_entries(db, self._batch)
            os.ftruncate(self._journal, 0)
            self._batch = []

    def _replay_journal(self) -> None:
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        entries = []
        for line in data.split(b"\n"):
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue  # a line torn by a power cut, or the empty tail
        with self._immediate() as db:
            _write_entries(db, entries)
        for entry in entries:
            self._apply_to_mirror(entry)
        self.journal_path.write_bytes(b"")

    def _apply_to_mirror(self, entry: dict[str, Any]) -> None:
        if entry["jti"] is not None:
            self._jtis[entry["jti"]] = entry["jti_expires_at"]
        for key, value, expires_at in entry["writes"]:
            if value is None:
                self._state.pop(key, None)
            else:
                self._state[key] = (value, expires_at)

    def _purge_expired(self, now: float) -> None:
        self.flush()
        with self._immediate() as db:
            db.execute("DELETE FROM seen_jti WHERE expires_at < ?", (int(now),))
            db.execute("DELETE FROM scene_state WHERE expires_at < ?", (int(now),))
        self._jtis = {jti: expiry for jti, expiry in self._jtis.items() if expiry >= now}
        self._state = {key: entry for key, entry in self._state.items() if entry[1] >= now}

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

    # -- outbox and metadata -----------------------------------------------

    def pending_records(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            self.flush()
            rows = self._db.execute("SELECT record FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [json.loads(row[0]) for row in rows]

    def pending_count(self) -> int:
        """How many records wait for the service (a sync's health report says so)."""
        with self._lock:
            self.flush()
            row = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0])

    def mark_synced(self, record_ids: Iterable[str]) -> None:
        """The service acknowledged these records: they leave the outbox."""
        with self._lock:
            self.flush()
            with self._immediate() as db:
                db.executemany("DELETE FROM outbox WHERE id = ?", [(record_id,) for record_id in record_ids])

    def set_aside(self, record_id: str, reason: str, now: float) -> None:
        """The service refused this record: out of the outbox, kept apart (with why) for an operator."""
        with self._lock:
            self.flush()
            with self._immediate() as db:
                db.execute(
                    "INSERT OR REPLACE INTO set_aside (id, record, reason, set_aside_at)"
                    " SELECT id, record, ?, ? FROM outbox WHERE id = ?",
                    (reason, now, record_id),
                )
                db.execute("DELETE FROM outbox WHERE id = ?", (record_id,))

    def set_aside_records(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT record, reason, set_aside_at FROM set_aside ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [{"record": json.loads(record), "reason": reason, "set_aside_at": at} for record, reason, at in rows]

    def requeue_set_aside(self) -> int:
        """Every set-aside record back into the outbox (after the cause was fixed); how many."""
        with self._lock:
            self.flush()
            with self._immediate() as db:
                moved = db.execute(
                    "INSERT OR IGNORE INTO outbox (id, record) SELECT id, record FROM set_aside"
                ).rowcount
                db.execute("DELETE FROM set_aside")
        return moved

    def get_meta(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self._immediate() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def close(self) -> None:
        with self._lock:
            if self._journal < 0:
                return
            self.flush()
            os.close(self._journal)
            self._journal = -1
            self._db.close()


def _write_entries(db: sqlite3.Connection, entries: list[dict[str, Any]]) -> None:
    """Apply journal entries in order; safe to repeat (replay after a crash)."""
    db.executemany(
        "INSERT OR IGNORE INTO outbox (id, record) VALUES (?, ?)",
        [(e["record"]["id"], json.dumps(e["record"], separators=(",", ":"))) for e in entries],
    )
    db.executemany(
        "INSERT OR REPLACE INTO seen_jti VALUES (?, ?)",
        [(e["jti"], e["jti_expires_at"]) for e in entries if e["jti"] is not None],
    )
    for entry in entries:
        for key, value, expires_at in entry["writes"]:
            if value is None:
                db.execute("DELETE FROM scene_state WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO scene_state VALUES (?, ?, ?)",
                    (key, json.dumps(value, separators=(",", ":")), expires_at),
                )


class _Transaction:
    """A store's lock held for one decision (a class: cheaper than a generator).

    After a decision that raised nothing, the store may do its bookkeeping
    (the SQLite store commits a full batch).
    """

    __slots__ = ("_now", "_store")

    def __init__(self, store: _InMemoryReads, now: float) -> None:
        self._store, self._now = store, now

    def __enter__(self) -> Any:
        self._store._lock.acquire()
        self._store._now = self._now
        return self._store

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        try:
            if exc_type is None:
                self._store._after_decision(self._now)
        finally:
            self._store._lock.release()
