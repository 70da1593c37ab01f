"""The verify path's database adapter: the offline library's store over the shared database. No Flask.

The service does not re-implement a rule: it runs :class:`verifiers.OfflineVerifier`
with a :class:`DatabaseStore`, so replay and scene state (open trips, today's
entries and check-ins) are shared by every worker and instance, and each
decision's usage record is written in the same database transaction as the
state change it depends on.

A decision is one write transaction in two steps, the shape of the
library's :class:`~verifiers.ReadAhead` store: (1) claim the code (its
``jti`` into ``seen_codes``; a paper code claims nothing) and lock and read
every scene state key the scene will ask for (``Scene.state_keys``); (2)
the scene decides in Python, then its state writes and the usage record are
written and committed. On PostgreSQL each step is one round trip: (1) is
``BEGIN; SELECT * FROM codeservice_claim_and_read(...)`` (migrations 0009 and 0011: a
transaction advisory lock per key, taken in one order, then the values); (2)
is one statement, the state writes as data-modifying CTEs of the usage
INSERT, followed by ``COMMIT``. A refusal after (1) (a replay, a scene's
rule) sends its ``ROLLBACK`` in front of its usage record, so it is two
round trips too; a refusal before it (a bad signature, a revoked resident)
is one. The scanner's key and the revocation list are not read here at all
(:mod:`codeservice.scan_cache` keeps them per process).

Concurrency: a concurrent claim of the same ``jti`` waits on the primary key
and then finds it taken; a scene's state key is locked before it is read
(PostgreSQL: the key's transaction advisory lock; SQLite: the write
transaction holds the database's write lock). Each scan has its own pooled
driver connection (:class:`ScanConnection`); the request's ORM session is
not involved.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from verifiers import Rejection, StateWrite
from verifiers.errors import Replayed

from .models import SceneStateEntry, SeenCode
from .usage_rollup import roll_up

if TYPE_CHECKING:
    from .db import SqliteWriter

PURGE_EVERY = 1000
"""One verification in this many also purges expired codes and scene state (:func:`purge_expired`)."""
REVOKED_CREDENTIALS_KEPT = timedelta(days=1)
"""A revoked credential expired longer ago than this is refused as expired before revocation is asked."""


def dialect_insert(session: Session, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on both PostgreSQL and SQLite."""
    name = session.get_bind().dialect.name
    return (pg_insert if name == "postgresql" else sqlite_insert)(table)


def parse_rfc3339(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a time without a zone")
    return parsed.astimezone(UTC)


# The verify path talks to the database driver directly: going through
# SQLAlchemy's session and execution layer cost several times what the
# database itself spent on these few statements. They are written once, with
# :named parameters, and translated to the driver's own style; values are
# converted here exactly as the models' column types would (JSON as text,
# SQLite times as SQLAlchemy writes them). sqlite3 keeps each statement
# prepared (its statement cache, by the SQL's text).
_STATEMENTS = {
    # SQLite only: the write transaction takes the write lock at once.
    "begin": "BEGIN IMMEDIATE",
    "directory_version": "SELECT version FROM scan_directory_version WHERE id = 1",
    "active_scanners": (
        "SELECT id, venue_id, device_id, scenes, key_hash, revoked_at, attended FROM scanners WHERE revoked_at IS NULL"
    ),
    "revoked_residents": "SELECT code_id FROM residents WHERE revoked_at IS NOT NULL",
    "revoked_credentials": "SELECT cti FROM credentials WHERE revoked_at IS NOT NULL AND expires_at >= :cutoff",
    "scanner": (
        "SELECT id, venue_id, device_id, scenes, key_hash, revoked_at, attended FROM scanners"
        " WHERE key_hash = :key_hash"
    ),
    "jti_taken": "SELECT 1 FROM seen_codes WHERE jti = :jti",
    "claim": (
        "INSERT INTO seen_codes (jti, expires_at) VALUES (:jti, :expires_at) ON CONFLICT (jti) DO NOTHING RETURNING jti"
    ),
    "read_state": "SELECT value FROM scene_state WHERE key = :key AND expires_at >= :now",
    # PostgreSQL: the claim, then each key's advisory lock, then their values, one by one (migrations 0009, 0011).
    "claim_and_read": (
        "SELECT claimed, state_values FROM codeservice_claim_and_read(:jti, :expires_at,"
        " ARRAY(SELECT json_array_elements_text(:keys::json)), :now)"
    ),
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
_PSYCOPG_STATEMENTS = {name: re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql) for name, sql in _STATEMENTS.items()}


@functools.cache
def _psycopg_record(deletes: tuple[bool, ...]) -> str:
    """PostgreSQL: a decision's state writes (a delete where True) and its usage record as one statement.

    Each write is a data-modifying CTE of the usage INSERT (a plain row into
    ``usage_records``: its triggers fire as for any INSERT); they touch
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


def _without_nul(value: Any) -> Any:
    """A JSON value with each NUL in its strings (keys included) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


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


@dataclass(frozen=True, slots=True)
class DirectoryRows:
    """What :class:`~codeservice.scan_cache.ScanDirectory` keeps: the active scanners and what is revoked."""

    version: int | None
    scanners: dict[str, ScannerRow]
    """The active scanners by their key's hash."""
    revoked_subs: frozenset[str]
    revoked_ctis: frozenset[str]


class ScanConnection:
    """A pooled driver connection for one scan, with the verify path's statements.

    :meth:`write` holds a decision's one write transaction and commits it
    durably:

    - SQLite: under the :class:`~codeservice.db.SqliteWriter`'s lock, with
      ``BEGIN IMMEDIATE``, so the database's write lock is held for those few
      prepared statements only; committed without a flush (WAL,
      ``synchronous=NORMAL``), then the log is flushed (``fdatasync``) outside
      the lock before anyone is answered (a group commit: see ``SqliteWriter``).
    - PostgreSQL: the connection is in autocommit mode; the decision's first
      round trip begins the transaction (``BEGIN; SELECT * FROM
      codeservice_claim_and_read(...)``), its second ends it (the writes and
      the usage record, then ``COMMIT``). A transaction that fails is rolled
      back by the ``ROLLBACK`` sent in front of the next statement (the
      refusal's usage record), or when the connection goes back to the pool.
      (psycopg's pipeline mode, tried for issue 4, cost more client time than
      it saved on the loopback; several statements in one simple query cost
      one round trip as well.)
    """

    def __init__(self, engine: Engine, sqlite: SqliteWriter | None, observe: Callable[[float], None]) -> None:
        self.postgres = engine.dialect.name == "postgresql"
        self._statements = _PSYCOPG_STATEMENTS if self.postgres else _STATEMENTS
        self._sqlite = sqlite
        self._observe = observe  # the database latency metric: one observation per round trip
        # SQLite with a writer: a connection that commits without a flush (write() flushes, outside the lock).
        self._connection = engine.raw_connection() if sqlite is None else sqlite.connection(engine)
        self._driver = cast(Any, self._connection.driver_connection)  # a psycopg or sqlite3 connection
        self._rollback_pending = False
        if self.postgres:
            import psycopg

            self._driver.autocommit = True  # the first round trip of a decision begins its transaction
            # Each statement is sent with its values in its text, so none is ever prepared: psycopg's
            # count of statements to prepare would only hash and cache every one of them, then evict it.
            self._prepare_threshold = self._driver.prepare_threshold
            self._driver.prepare_threshold = None
            self._cursor: Any = psycopg.ClientCursor(self._driver)  # several statements in one round trip
        else:
            self._cursor = None

    # -- statements ------------------------------------------------------------

    def execute(self, name: str, params: dict[str, Any]) -> Any:
        return self._run(self._statements[name], params)

    def _run(self, sql: str, params: dict[str, Any]) -> Any:
        """One round trip (PostgreSQL) or one prepared statement (SQLite), observed by the latency metric.

        PostgreSQL: a failed transaction's pending ``ROLLBACK`` goes in front,
        in the same round trip; the cursor is left on the last statement's result.
        """
        started = time.perf_counter()
        if self.postgres:
            cursor = self._cursor
            if self._rollback_pending:
                sql = "ROLLBACK; " + sql
                self._rollback_pending = False
            cursor.execute(sql, params)
            while cursor.nextset():
                pass
        else:
            cursor = self._driver.execute(sql, params)
        self._observe(time.perf_counter() - started)
        return cursor

    def claim_and_read(self, claim: tuple[str, int] | None, keys: Sequence[str], now: int) -> list[Any] | None:
        """Claim ``claim``'s ``(jti, expires_at)`` (None: claim nothing), then lock and read ``keys``.

        The values, in the keys' order (None for a key not set); None when
        the code was claimed already (then nothing is locked). PostgreSQL:
        one round trip, which begins the write transaction if none is open.
        """
        jti, expires_at = claim if claim is not None else (None, 0)
        if self.postgres:
            # The keys as one JSON text: cheaper to send than an array psycopg adapts element by element.
            params = {"jti": jti, "expires_at": expires_at, "keys": self.json_in(keys), "now": now}
            sql = _PSYCOPG_STATEMENTS["claim_and_read"]
            if not self._in_transaction():
                sql = "BEGIN; " + sql
            claimed, values = self._run(sql, params).fetchone()
            return values if claimed else None
        if jti is not None and self.execute("claim", {"jti": jti, "expires_at": expires_at}).fetchone() is None:
            return None
        values = []
        for key in keys:  # under the database's write lock already
            row = self.execute("read_state", {"key": key, "now": now}).fetchone()
            values.append(None if row is None else self.json_out(row[0]))
        return values

    def jti_taken(self, jti: str) -> bool:
        return self.execute("jti_taken", {"jti": jti}).fetchone() is not None

    def record(self, writes: Iterable[StateWrite], usage: dict[str, Any]) -> None:
        """A decision's state writes and its usage record: one statement on PostgreSQL (with the COMMIT)."""
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
        # The write transaction's last statement and its commit; or, for a refusal
        # before any claim or read, one statement: its own transaction.
        self._run(f"{sql}; COMMIT" if self._in_transaction() else sql, params)

    @contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction, committed durably if the block ends normally, else rolled back."""
        sqlite = self._sqlite
        if not self.postgres:
            with sqlite or nullcontext():
                if sqlite is not None:
                    self._driver.execute(_STATEMENTS["begin"])
                try:
                    yield
                except BaseException:
                    self._driver.rollback()
                    raise
                self._driver.commit()
            if sqlite is not None:
                sqlite.flush_log()  # before the caller can answer anyone
            return
        try:
            yield
        except BaseException:
            if self._in_transaction():
                self._rollback_pending = True  # sent with the next statement, or by close()
            raise
        if self._in_transaction():  # a decision that wrote nothing after its reads (not the verifier's way)
            self._run("COMMIT", {})

    def _in_transaction(self) -> bool:
        """PostgreSQL: whether a transaction is open (or failed) on the server, by the driver's last word."""
        return self._driver.info.transaction_status != _IDLE and not self._rollback_pending

    def close(self, *, invalidate: bool = False) -> None:
        """Back to the pool as it lent it; ``invalidate``: the connection failed, drop it."""
        if not invalidate and self.postgres:
            try:
                self._rollback_pending = False
                if self._driver.info.transaction_status != _IDLE:
                    self._run("ROLLBACK", {})  # a decision that failed otherwise than by a refusal
                self._driver.autocommit = False  # as the pool's other users expect
                self._driver.prepare_threshold = self._prepare_threshold
            except Exception:  # the connection broken
                invalidate = True
        if invalidate:
            self._connection.invalidate()
        self._connection.close()

    # -- values ----------------------------------------------------------------

    def json_in(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    def detail_in(self, detail: Any) -> str:
        """A usage record's detail as JSON text: on PostgreSQL (jsonb, which holds no NUL) each NUL as U+FFFD.

        The same replacement migration 0010 made in the details stored before; SQLite keeps a NUL.
        """
        text = self.json_in(detail)
        if self.postgres and "\\u0000" in text:  # rare: a scanner's context holding a NUL
            text = self.json_in(_without_nul(detail))
        return text

    def json_out(self, value: Any) -> Any:
        # psycopg hands json columns back decoded; sqlite3 hands back the text,
        # except that a JSON column has numeric affinity there: a bare number
        # comes back as a number already.
        return json.loads(value) if isinstance(value, str) and not self.postgres else value

    def time_in(self, value: datetime) -> Any:
        return value if self.postgres else value.astimezone(UTC).strftime(_SQLITE_TIME)

    # -- the scanners and the revocation list (read rarely: codeservice.scan_cache) ------

    def scanner(self, key_hash: str) -> ScannerRow | None:
        row = self.execute("scanner", {"key_hash": key_hash}).fetchone()
        return None if row is None else self._scanner_row(row)

    def directory_version(self) -> int | None:
        row = self.execute("directory_version", {}).fetchone()
        return None if row is None else int(row[0])

    def directory(self, version: int | None, now: datetime) -> DirectoryRows:
        """The active scanners and the revocation list as they are now; ``version`` read before them."""
        scanners = {row[4]: self._scanner_row(row) for row in self.execute("active_scanners", {}).fetchall()}
        subs = frozenset(row[0] for row in self.execute("revoked_residents", {}).fetchall())
        cutoff = self.time_in(now - REVOKED_CREDENTIALS_KEPT)
        ctis = frozenset(row[0] for row in self.execute("revoked_credentials", {"cutoff": cutoff}).fetchall())
        return DirectoryRows(version, scanners, subs, ctis)

    def _scanner_row(self, row: Sequence[Any]) -> ScannerRow:
        return ScannerRow(row[0], row[1], row[2], self.json_out(row[3]), row[4], row[5], bool(row[6]))


class DatabaseStore:
    """The verifier's :class:`~verifiers.DecisionStore` over a scan's connection, reading ahead.

    Only the decision half: each usage record is written to the database with
    its decision, so nothing waits to be uploaded, and the keys and the
    revocation list are the service's own. The verifier has no outbox.

    The claim waits for the reads: :meth:`claim_jti` notes it and says yes;
    :meth:`read_ahead` (or the first :meth:`get`, or :meth:`save` for a
    scene that reads nothing) makes it with the reads, in the same round
    trip, and raises :class:`~verifiers.errors.Replayed` for a code claimed
    already, before the scene sees any state.
    """

    reads_ahead = True

    def __init__(self, connection: ScanConnection, scanner: ScannerRow) -> None:
        self.connection = connection
        self.scanner = scanner
        self._now = 0.0
        self._claim: tuple[str, int] | None = None
        self._values: dict[str, Any] = {}

    # -- the DecisionStore protocol, and its ReadAhead transaction --------------

    @contextmanager
    def transaction(self, now: float) -> Iterator[DatabaseStore]:
        self._now = now
        self._claim = None
        self._values = {}
        with self.connection.write():
            try:
                yield self
            except Rejection as rejection:
                claim, self._claim = self._claim, None
                # Refused before the claim was made (no verifier that reads ahead does
                # this): a code used already is ``replayed`` first, as the rules' order says.
                if claim is not None and not isinstance(rejection, Replayed) and self.connection.jti_taken(claim[0]):
                    raise Replayed() from rejection
                raise

    def claim_jti(self, jti: str, expires_at: int) -> bool:
        self._claim = (jti, expires_at)
        return True  # made with the reads; Replayed then if taken

    def read_ahead(self, keys: list[str]) -> None:
        if self.connection.postgres and any("\x00" in key for key in keys):
            # PostgreSQL's text holds no NUL: such a key fails when the scene asks for it
            # (a bad_context decision, the scene's failure), not here.
            keys = [key for key in keys if "\x00" not in key]
        self._read(keys)

    def _read(self, keys: list[str]) -> None:
        claim, self._claim = self._claim, None
        values = self.connection.claim_and_read(claim, keys, int(self._now))
        if values is None:
            raise Replayed()
        self._values.update(zip(keys, values, strict=True))

    def get(self, key: str) -> Any:
        if key not in self._values:  # a key the scene did not list: locked and read now
            self._read([key])
        return self._values[key]

    def save(
        self,
        record: dict[str, Any],
        *,
        jti: str | None = None,
        jti_expires_at: int = 0,
        writes: Iterable[StateWrite] = (),
    ) -> None:
        connection = self.connection
        if self._claim is not None:  # a scene that read no state: the claim alone
            self._read([])
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
                "detail": connection.detail_in(record["detail"]),
                "scanner_id": scanner.id,
                "online": True,
                "received_at": connection.time_in(datetime.now(UTC)),
                "form": record.get("form", "online"),
            },
        )


def purge_expired(session: Session, now: float | None = None) -> None:
    """Forget codes and scene state that can no longer matter; count the usage records in (:func:`roll_up`)."""
    cutoff = int(time.time() if now is None else now)
    session.execute(delete(SeenCode).where(SeenCode.expires_at < cutoff))
    session.execute(delete(SceneStateEntry).where(SceneStateEntry.expires_at < cutoff))
    session.commit()
    roll_up(session)  # PostgreSQL: the records not yet counted stay about PURGE_EVERY
