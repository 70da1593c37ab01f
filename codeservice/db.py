"""The database: one engine per app, one session per request.

SQLite in the instance folder by default; PostgreSQL (or anything SQLAlchemy
speaks) by ``CODESERVICE_DATABASE_URL``, e.g. ``postgresql+psycopg://user@host/db``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker


SQLITE_FILE = "codeservice.db"


def database_url(app: Flask) -> str:
    url = app.config.get("DATABASE_URL")
    if url:
        return url
    os.makedirs(app.instance_path, exist_ok=True)
    return f"sqlite:///{os.path.join(app.instance_path, SQLITE_FILE)}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_connect(connection: Any, _record: Any) -> None:
    # SQLAlchemy's documented recipe: the driver issues no BEGIN of its own,
    # so the "begin" hook below decides how transactions start.
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # Take the write lock up front: a transaction that reads, then writes
    # (check a code, then record it) can never be overtaken in between, and
    # concurrent writers wait on the busy timeout instead of failing.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def init_app(app: Flask) -> None:
    engine = make_engine(database_url(app))
    app.extensions["codeservice.db"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def engine(app: Flask | None = None) -> Engine:
    factory = (app or current_app).extensions["codeservice.db"]
    return factory.kw["bind"]


def session() -> Session:
    """The request's (or CLI command's) session, created on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["codeservice.db"]()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()


def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached, not that a statement is wrong.

    SQLAlchemy wraps driver errors (``OperationalError``, or any ``DBAPIError``
    that invalidated its connection); the verify path's raw driver cursor
    raises the driver's own ``OperationalError`` (psycopg: server restarting,
    connection closed or refused).
    """
    if isinstance(error, exc.DBAPIError):
        return isinstance(error, exc.OperationalError) or error.connection_invalidated
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
    except Exception:  # noqa: BLE001 - the connection is gone; the pool replaces it
        pass
    try:
        db_session.close()
    except Exception:  # noqa: BLE001
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
