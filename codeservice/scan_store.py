"""The verify path's database adapter: the offline library's store over the shared database. No Flask.

The service does not re-implement a rule: it runs :class:`verifiers.OfflineVerifier`
with a :class:`DatabaseStore`, so replay and scene state (open trips, today's
entries and check-ins) are shared by every worker and instance, and each
decision's usage record is written in the same database transaction as the
state change it depends on.

Concurrency: a code's ``jti`` is claimed by inserting it (a concurrent
claim of the same ``jti`` waits on the primary key and then finds it taken);
a scene's state key is locked before it is read (PostgreSQL: a transaction
advisory lock on the key; SQLite: the write transaction holds the database's
write lock). Each scan has its own pooled driver connection
(:class:`ScanConnection`); the request's ORM session is not involved.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from verifiers import StateWrite

from .models import SceneStateEntry, SeenCode

if TYPE_CHECKING:
    from .db import SqliteWriter

PURGE_EVERY = 1000
"""One verification in this many also purges expired codes and scene state (:func:`purge_expired`)."""


def dialect_insert(session: Session, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on both PostgreSQL and SQLite."""
    name = session.get_bind().dialect.name
    return (pg_insert if name == "postgresql" else sqlite_insert)(table)


def parse_rfc3339(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a time without a zone")
    return parsed.astimezone(UTC)


# The verify path talks to the database driver directly. Each scan costs a
# handful of small statements; going through SQLAlchemy's session and
# execution layer cost several times what the database itself spent on them. The
# statements are written once, with :named parameters, and translated to the
# driver's own style; values are converted here exactly as the models'
# column types would (JSON as text, SQLite times as SQLAlchemy writes them).
_STATEMENTS = {
    # SQLite only: the write transaction takes the write lock at once; whether
    # COMMIT flushes the log itself (see ScanConnection.write).
    "begin": "BEGIN IMMEDIATE",
    "no_flush_at_commit": "PRAGMA synchronous=NORMAL",
    "flush_at_commit": "PRAGMA synchronous=FULL",
    "scanner": (
        "SELECT id, venue_id, device_id, scenes, key_hash, revoked_at, attended FROM scanners"
        " WHERE key_hash = :key_hash"
    ),
    "revoked": "SELECT 1 FROM residents WHERE code_id = :sub AND revoked_at IS NOT NULL",
    "revoked_credential": "SELECT 1 FROM credentials WHERE cti = :cti AND revoked_at IS NOT NULL",
    "claim": (
        "INSERT INTO seen_codes (jti, expires_at) VALUES (:jti, :expires_at) ON CONFLICT (jti) DO NOTHING RETURNING jti"
    ),
    "read_state": "SELECT value FROM scene_state WHERE key = :key AND expires_at >= :now",
    # PostgreSQL: the key's advisory lock, then its value, in one round trip (migration 0003).
    "locked_state": "SELECT codeservice_locked_state(:key, :now)",
    "delete_state": "DELETE FROM scene_state WHERE key = :key",
    "write_state": (
        "INSERT INTO scene_state (key, value, expires_at) VALUES (:key, :value, :expires_at) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
    ),
    "usage": (
        "INSERT INTO usage_records (id, scene, venue_id, device_id, sub, jti, decided_at, ok, code, detail,"
        " scanner_id, online, received_at, form) VALUES (:id, :scene, :venue_id, :device_id, :sub, :jti,"
        " :decided_at, :ok, :code, :detail, :scanner_id, :online, :received_at, :form)"
    ),
}
_PSYCOPG_STATEMENTS = {name: re.sub(r":(\w+)", r"%(\1)s", sql) for name, sql in _STATEMENTS.items()}


@functools.cache
def _psycopg_record(deletes: tuple[bool, ...]) -> str:
    """PostgreSQL: a decision's state writes (a delete where True) and its usage record as one statement.

    Each write is a data-modifying CTE of the usage INSERT; they touch
    distinct keys (the caller keeps one write per key), so their order does
    not matter.
    """
    writes = [
        f"w{i} AS (DELETE FROM scene_state WHERE key = %(key{i})s)"
        if delete
        else f"w{i} AS (INSERT INTO scene_state (key, value, expires_at) VALUES (%(key{i})s, %(value{i})s,"
        f" %(expires_at{i})s) ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at)"
        for i, delete in enumerate(deletes)
    ]
    return ("WITH " + ", ".join(writes) + " " if writes else "") + _PSYCOPG_STATEMENTS["usage"]


_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DateTime on SQLite


@dataclass(frozen=True, slots=True)
class ScannerRow:
    id: int
    venue_id: str
    device_id: str
    scenes: list[str]
    key_hash: str
    revoked_at: Any
    attended: bool = False
    """A staffed scanner (``scanners add --attended``): its verifier accepts paper codes."""


class ScanConnection:
    """A pooled driver connection for one scan, with the verify path's statements.

    The reads (the scanner's key, the revocation list) run first, outside
    any write transaction. :meth:`write` holds the one write transaction
    (claim the ``jti``, scene state, usage record) and commits it durably:

    - SQLite: under the :class:`~codeservice.db.SqliteWriter`'s lock, with
      ``BEGIN IMMEDIATE``, so the database's write lock is held for those few
      statements only; committed without a flush, then the log is flushed
      outside the lock (a group commit: see ``SqliteWriter``).
    - PostgreSQL: the connection is in autocommit mode, so the reads cost
      one round trip each and no transaction. The claim begins the write
      transaction in the same round trip (``BEGIN; INSERT ...``), or, for a
      paper code, which claims nothing, its first scene state read does
      (:meth:`locked_state`); the
      decision's writes end it with its ``COMMIT``: six round trips for an
      accepted code (pool ping, scanner, revocation, claim, locked state,
      writes) instead of eight; a rejection's usage record is one statement,
      its own transaction. In-process this saves about 0.3 ms of wall time
      per decision; under load on one 2-core machine the gain is inside its
      noise, on a real network each round trip saved is one network delay.
      (psycopg's pipeline mode, tried first, cost more client time than it
      saved on the loopback.)
    """

    def __init__(self, engine: Engine, sqlite: SqliteWriter | None, observe: Callable[[float], None]) -> None:
        self.postgres = engine.dialect.name == "postgresql"
        self._statements = _PSYCOPG_STATEMENTS if self.postgres else _STATEMENTS
        self._sqlite = sqlite
        self._observe = observe  # the database latency metric
        self._connection = engine.raw_connection()
        self._cursor = self._connection.cursor()
        self._batch_cursor: Any = None  # PostgreSQL: several statements in one round trip
        if sqlite is not None:
            self.execute("no_flush_at_commit", {})  # write() flushes, outside the lock
        if self.postgres:
            import psycopg

            self._driver = cast("psycopg.Connection[Any]", self._connection.driver_connection)
            self._driver.autocommit = True  # reads need no transaction; claim() begins one
            self._batch_cursor = psycopg.ClientCursor(self._driver)

    def execute(self, name: str, params: dict[str, Any]) -> Any:
        return self._run(self._statements[name], params)

    def claim(self, jti: str, expires_at: int) -> bool:
        """Claim a code's ``jti`` (False: taken); on PostgreSQL this begins the write transaction."""
        params = {"jti": jti, "expires_at": expires_at}
        if not self.postgres:
            return self.execute("claim", params).fetchone() is not None
        cursor = self._run(f"BEGIN; {_PSYCOPG_STATEMENTS['claim']}", params, self._batch_cursor)
        cursor.nextset()
        return cursor.fetchone() is not None

    def locked_state(self, params: dict[str, Any]) -> Any:
        """PostgreSQL: a scene state key's value under its transaction advisory lock, inside the write transaction.

        A JWS or device code's claim began that transaction; a paper code claims
        nothing (it has no replay rule), so its first read begins it here, in
        the same round trip: the lock must be held until the decision's writes
        commit, or two scans of one paper code could both pass ``already_entered``.
        """
        if self._in_transaction():
            return self.execute("locked_state", params)
        cursor = self._run(f"BEGIN; {_PSYCOPG_STATEMENTS['locked_state']}", params, self._batch_cursor)
        cursor.nextset()
        return cursor

    def record(self, writes: Iterable[StateWrite], usage: dict[str, Any]) -> None:
        """A decision's state writes and its usage record: one statement on PostgreSQL, one each on SQLite."""
        latest = list({write.key: write for write in writes}.values())  # one write per key, the last
        if not self.postgres:
            for write in latest:
                if write.value is None:
                    self.execute("delete_state", {"key": write.key})
                else:
                    value = self.json_in(write.value)
                    self.execute("write_state", {"key": write.key, "value": value, "expires_at": write.expires_at})
            self.execute("usage", usage)
            return
        params = dict(usage)
        for i, write in enumerate(latest):
            params[f"key{i}"] = write.key
            if write.value is not None:
                params[f"value{i}"], params[f"expires_at{i}"] = self.json_in(write.value), write.expires_at
        sql = _psycopg_record(tuple(write.value is None for write in latest))
        if self._in_transaction():  # the write transaction's last statement, and its commit
            self._run(f"{sql}; COMMIT", params, self._batch_cursor)
        else:  # a rejection: one statement, its own transaction
            self._run(sql, params)

    def _run(self, sql: str, params: dict[str, Any], cursor: Any = None) -> Any:
        """One round trip, observed by the database latency metric."""
        cursor = cursor or self._cursor
        started = time.perf_counter()
        cursor.execute(sql, params)
        self._observe(time.perf_counter() - started)
        return cursor

    @contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction, committed durably if the block ends normally, else rolled back."""
        sqlite = self._sqlite
        with sqlite or nullcontext():
            if sqlite is not None:
                self.execute("begin", {})
            try:
                yield
            except BaseException:
                self._rollback()
                raise
            if sqlite is not None:
                self._connection.commit()
            elif self._in_transaction():
                self._run("COMMIT", {})
        if sqlite is not None:
            sqlite.flush_log()  # before the caller can answer anyone

    def _rollback(self) -> None:
        if not self.postgres:
            self._connection.rollback()
        elif self._in_transaction():
            self._run("ROLLBACK", {})

    def _in_transaction(self) -> bool:
        """PostgreSQL: whether a transaction is open (or failed) on the server, by the driver's last word."""
        return self._driver.info.transaction_status != _IDLE

    def close(self, *, invalidate: bool = False) -> None:
        """Back to the pool (which rolls back what is open); ``invalidate``: the connection failed, drop it."""
        if not invalidate and self._sqlite is not None:
            try:
                self.execute("flush_at_commit", {})  # as the pool's other users expect
            except Exception:  # not as expected, then not back in the pool
                invalidate = True
        if not invalidate and self.postgres:
            try:
                self._driver.autocommit = False  # as the pool's other users expect
            except Exception:  # a transaction still open or the connection broken
                invalidate = True
        if invalidate:
            self._connection.invalidate()
        self._connection.close()

    def json_in(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    def json_out(self, value: Any) -> Any:
        # psycopg hands json columns back decoded; sqlite3 hands back the text,
        # except that a JSON column has numeric affinity there: a bare number
        # comes back as a number already.
        return json.loads(value) if isinstance(value, str) and not self.postgres else value

    def time_in(self, value: datetime) -> Any:
        return value if self.postgres else value.astimezone(UTC).strftime(_SQLITE_TIME)

    def scanner(self, key_hash: str) -> ScannerRow | None:
        row = self.execute("scanner", {"key_hash": key_hash}).fetchone()
        if row is None:
            return None
        return ScannerRow(row[0], row[1], row[2], self.json_out(row[3]), row[4], row[5], bool(row[6]))


class DatabaseStore:
    """The verifier's :class:`~verifiers.DecisionStore` over a scan's connection.

    Only the decision half: each usage record is written to the database with
    its decision, so nothing waits to be uploaded, and the keys and the
    revocation list are the service's own. The verifier has no outbox.
    """

    def __init__(self, connection: ScanConnection, scanner: ScannerRow) -> None:
        self.connection = connection
        self.scanner = scanner
        self._now = 0.0

    # -- the DecisionStore protocol, and its Transaction ---------------------

    @contextmanager
    def transaction(self, now: float) -> Iterator[DatabaseStore]:
        self._now = now
        with self.connection.write():
            yield self

    def claim_jti(self, jti: str, expires_at: int) -> bool:
        return self.connection.claim(jti, expires_at)

    def get(self, key: str) -> Any:
        connection = self.connection
        params = {"key": key, "now": int(self._now)}
        # SQLite: under the write lock already; PostgreSQL: the key's advisory lock, held to the commit.
        cursor = connection.locked_state(params) if connection.postgres else connection.execute("read_state", params)
        row = cursor.fetchone()
        return None if row is None else connection.json_out(row[0])

    def save(
        self,
        record: dict[str, Any],
        *,
        jti: str | None = None,
        jti_expires_at: int = 0,
        writes: Iterable[StateWrite] = (),
    ) -> None:
        # ``jti`` was inserted by claim_jti in this same transaction.
        connection = self.connection
        scanner = self.scanner
        connection.record(
            writes,
            {
                "id": record["id"],
                "scene": record["scene"],
                "venue_id": scanner.venue_id,  # always the scanner's, never the body's
                "device_id": scanner.device_id,
                "sub": record["sub"],
                "jti": record["jti"],
                "decided_at": connection.time_in(parse_rfc3339(record["decided_at"])),
                "ok": record["ok"],
                "code": record["code"],
                "detail": connection.json_in(record["detail"]),
                "scanner_id": scanner.id,
                "online": True,
                "received_at": connection.time_in(datetime.now(UTC)),
                "form": record.get("form", "online"),
            },
        )


class RevokedResidents:
    """``sub in revoked``: the live revocation list, read from the residents table."""

    def __init__(self, connection: ScanConnection) -> None:
        self.connection = connection

    def __contains__(self, sub: object) -> bool:
        return self.connection.execute("revoked", {"sub": sub}).fetchone() is not None


class RevokedCredentials:
    """``cti in revoked``: the revoked device and paper credentials, read from the credentials table by its key."""

    def __init__(self, connection: ScanConnection) -> None:
        self.connection = connection

    def __contains__(self, cti: object) -> bool:
        return self.connection.execute("revoked_credential", {"cti": cti}).fetchone() is not None


def purge_expired(session: Session, now: float | None = None) -> None:
    """Forget codes and scene state that can no longer matter."""
    cutoff = int(time.time() if now is None else now)
    session.execute(delete(SeenCode).where(SeenCode.expires_at < cutoff))
    session.execute(delete(SceneStateEntry).where(SceneStateEntry.expires_at < cutoff))
    session.commit()
