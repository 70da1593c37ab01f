"""The database: one engine per app, one session per request.

SQLite in the instance folder by default; PostgreSQL (or anything SQLAlchemy
speaks) by ``CODESERVICE_DATABASE_URL``, e.g. ``postgresql+psycopg://user@host/db``.
"""

from __future__ import annotations

import fcntl
import math
import os
import sqlite3
import threading
import time
import weakref
from typing import Any, cast

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from .extensions import DB_SESSIONS, SQLITE_WRITER

SQLITE_FILE = "codeservice.db"


def database_url(app: Flask) -> str:
    url: str | None = app.config.get("DATABASE_URL")
    if url:
        return url
    os.makedirs(app.instance_path, exist_ok=True)
    return f"sqlite:///{os.path.join(app.instance_path, SQLITE_FILE)}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _create_private_file(url)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "checkout", _sqlite_checkout)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(url)
    _ping_when_stale(engine)
    return engine


IDLE_BEFORE_PING_SECONDS = 5.0
"""A pooled connection idle in the pool longer than this is pinged before it is lent; one in steady use is not."""
_LOST_AT: weakref.WeakKeyDictionary[Engine, list[float]] = weakref.WeakKeyDictionary()


def _ping_when_stale(engine: Engine) -> None:
    """Pre-ping a pooled connection only where it can have gone stale, instead of on every checkout.

    A connection can have gone stale when it sat idle (a server restart, a
    proxy's or firewall's idle timeout may have closed it meanwhile), or when
    another connection of the engine was found lost since it was last used
    (the server went away: every connection of that time is suspect). Then it
    is pinged (``SELECT 1``, one round trip) and, if dead, replaced by the
    pool. A connection in steady use (the verify path under load) is lent as
    it is: its first statement fails if the server went away that instant,
    and the request is a clean 503 (``database_unavailable``).
    """
    lost_at = [-math.inf]

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None:  # connected just now
            return
        if time.monotonic() - idle_since < IDLE_BEFORE_PING_SECONDS and idle_since > lost_at[0]:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool replaces it (and tries up to three times)
            lost_at[0] = time.monotonic()
            raise exc.DisconnectionError() from error

    def handle_error(context: Any) -> None:
        if context.is_disconnect:
            lost_at[0] = time.monotonic()

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)
    event.listen(engine, "handle_error", handle_error)
    _LOST_AT[engine] = lost_at


def connection_lost(engine: Engine) -> None:
    """A connection of ``engine`` was found lost outside SQLAlchemy (the verify path's driver): ping the others."""
    lost_at = _LOST_AT.get(engine)
    if lost_at is not None:
        lost_at[0] = time.monotonic()


def sqlite_file(url: str) -> str | None:
    """The absolute path of a SQLite file URL; None for anything else (PostgreSQL, an in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return os.path.abspath(parsed.database)


def _create_private_file(url: str) -> None:
    """Create a new SQLite database file readable and writable by its owner alone (0600).

    SQLite would create it with the umask's mode (0644, as a rule); an empty
    file is a valid empty database. SQLite gives the write-ahead log, its
    index and any journal the database file's mode, so they are 0600 too.
    An existing file keeps the mode its operator gave it.
    """
    path = sqlite_file(url)
    if path is None or make_url(url).query.get("uri"):  # a file: URI is SQLite's to interpret
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except OSError:
        pass  # there already; or no such folder, no permission: SQLite says so when it opens it


def _sqlite_connect(connection: Any, _record: Any) -> None:
    # SQLAlchemy's documented recipe: the driver issues no BEGIN of its own,
    # so the "begin" hook below decides how transactions start.
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns, as PostgreSQL's
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_NO_FLUSH_AT_COMMIT = "codeservice.no_flush_at_commit"
"""In a pooled SQLite connection's ``info``: it commits with ``synchronous=NORMAL``, lent to a ``SqliteWriter``."""
_lending = threading.local()  # .to_writer: the checkout under way is SqliteWriter.connection's


def _sqlite_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """A connection left committing without a flush by the verify path flushes again when anyone else borrows it."""
    if record.info.get(_NO_FLUSH_AT_COMMIT) and not getattr(_lending, "to_writer", False):
        try:
            dbapi_connection.execute("PRAGMA synchronous=FULL")
        except Exception as error:  # not as every other user expects it: the pool replaces it
            raise exc.DisconnectionError() from error
        del record.info[_NO_FLUSH_AT_COMMIT]


def _sqlite_begin(connection: Any) -> None:
    # Take the write lock up front: a transaction that reads, then writes
    # (check a code, then record it) can never be overtaken in between, and
    # concurrent writers wait on the busy timeout instead of failing.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class SqliteWriter:
    """Writes to one SQLite file, one writer at a time, made durable outside the lock.

    The lock: SQLite lets a second writer wait only by polling (its busy
    handler sleeps 1, 2, 5, 10... ms between tries), so under load most of a
    request's time went to sleeping while the lock was long free. Writers
    that take this lock first (an exclusive ``flock`` on a file beside the
    database, plus a thread lock, since ``flock`` does not exclude threads
    sharing one file) wait in the kernel and wake the moment it is released;
    their ``BEGIN IMMEDIATE`` then finds the database free. Writers that do
    not take it stay correct through the busy timeout. A process that dies
    holding it releases it with its file descriptors.

    Durability, as a group commit: a writer commits under the lock with
    ``synchronous=NORMAL`` (into the write-ahead log, not yet flushed),
    releases the lock, then calls :meth:`flush_log` (``fdatasync`` of the log)
    before it answers. The next writer commits meanwhile, and one flush
    covers every commit written before it, so writers no longer queue behind
    each other's flushes. A commit is on disk before its caller is told
    anything, exactly as with ``synchronous=FULL``.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock_path = path + ".writer-lock"
        self.log_path = path + "-wal"
        self._thread_lock = threading.Lock()
        self._fd = -1
        self._pid = 0

    @classmethod
    def for_url(cls, url: str) -> SqliteWriter | None:
        """The writer for a SQLite file URL; None for anything else (PostgreSQL, an in-memory SQLite)."""
        path = sqlite_file(url)
        return None if path is None else cls(path)

    def __enter__(self) -> SqliteWriter:
        self._thread_lock.acquire()
        try:
            fcntl.flock(self._lock_file(), fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    @staticmethod
    def connection(engine: Engine) -> Any:
        """A pooled connection of ``engine`` for the writer's commits: ``synchronous=NORMAL`` (flush_log flushes).

        It is left so when it goes back to the pool, for the next of these;
        any other checkout gets it back with ``synchronous=FULL`` first (the
        engine's ``checkout`` hook), as every other user of the pool expects.
        So a run of scans sets neither PRAGMA, on the path that runs most.
        """
        _lending.to_writer = True
        try:
            connection = engine.raw_connection()
        finally:
            _lending.to_writer = False
        if not connection.info.get(_NO_FLUSH_AT_COMMIT):
            try:
                cast(Any, connection.driver_connection).execute("PRAGMA synchronous=NORMAL")
            except BaseException:
                connection.close()
                raise
            connection.info[_NO_FLUSH_AT_COMMIT] = True
        return connection

    def flush_log(self) -> None:
        """Flush the write-ahead log (``fdatasync``, as SQLite does): every commit in it is then on disk."""
        try:
            # Opened each time: SQLite deletes the log when its last connection
            # closes (after copying it into the database, flushed), so a kept
            # descriptor could point at a file no longer in use.
            fd = os.open(self.log_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # checkpointed into the database file and flushed there
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def _lock_file(self) -> int:
        # Opened once per process: a descriptor inherited across fork (gunicorn
        # --preload) shares its lock with the parent and would exclude nothing.
        if self._pid != os.getpid():
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd


def init_app(app: Flask) -> None:
    url = database_url(app)
    engine = make_engine(url)
    app.extensions[DB_SESSIONS] = sessionmaker(engine, expire_on_commit=False)
    app.extensions[SQLITE_WRITER] = SqliteWriter.for_url(url)
    app.teardown_appcontext(_close_session)


def engine(app: Flask | None = None) -> Engine:
    factory = (app or current_app).extensions[DB_SESSIONS]
    return cast(Engine, factory.kw["bind"])


def sqlite_writer(app: Flask | None = None) -> SqliteWriter | None:
    """The SQLite file's writer (its lock and log flush); None on PostgreSQL."""
    return cast(SqliteWriter | None, (app or current_app).extensions[SQLITE_WRITER])


def session() -> Session:
    """The request's (or CLI command's) session, created on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions[DB_SESSIONS]()
    return cast(Session, g.db_session)


def _close_session(_exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()


def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached, not that a statement is wrong.

    SQLAlchemy wraps driver errors (``OperationalError``, or any ``DBAPIError``
    that invalidated its connection); the verify path's raw driver cursor
    raises the driver's own ``OperationalError`` (psycopg: server restarting,
    connection closed or refused; sqlite3: locked past the busy timeout, or
    the file unreadable).
    """
    if isinstance(error, exc.DBAPIError):
        return isinstance(error, exc.OperationalError) or error.connection_invalidated
    if isinstance(error, sqlite3.OperationalError):  # locked past the busy timeout, unreadable, disk full
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL support not installed
        return False
    return isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError))


def discard_session() -> None:
    """Roll back and close the request's session after its connection failed."""
    db_session = g.pop("db_session", None)
    if db_session is None:
        return
    try:
        db_session.rollback()
    except Exception:  # the connection is gone; the pool replaces it
        pass
    try:
        db_session.close()
    except Exception:
        pass


def init_db(app: Flask | None = None) -> None:
    """Create or upgrade the schema to the newest migration; safe to repeat.

    Alembic owns the schema (``codeservice/migrations``). It runs on the app's
    own engine, so the URL's options (a PostgreSQL ``search_path``) apply. A
    database made by ``create_all`` before migrations is stamped at 0001.
    """
    from . import migrations  # Alembic is only needed here

    with engine(app).begin() as connection:
        migrations.upgrade(connection)
