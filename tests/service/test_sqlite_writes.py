"""The verify path's writes on SQLite: one writer at a time, flushed to disk before the answer.

``SqliteWriter`` serialises writers with an exclusive ``flock`` (so waiting
writers wake as soon as it is free instead of polling in SQLite's busy
handler), and makes each commit durable by flushing the write-ahead log after
the lock is released and before the request is answered. These tests check
what can be checked without pulling the power: the lock excludes another
open file (as another process would hold it), the flush comes after the
commit and outside the lock, once per decision, and the pool gets its
connections back with ``synchronous=FULL``.
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import service_code
from sqlalchemy import func, select

from codeservice import create_app, db
from codeservice.db import SqliteWriter
from codeservice.models import UsageRecord

VERIFY = "/api/v1/verify"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'codeservice.db'}"


def held_elsewhere(path: str) -> bool:
    """Whether another open file description (as another process's) is shut out of the lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock it took
    return False


def usage_rows(app: Any) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(UsageRecord)) or 0


@pytest.mark.parametrize("name", ["codeservice.db", "with space, 空格.db"])
def test_the_database_file_and_its_log_are_private_to_their_owner(tmp_path: Path, keys_dir: Path, name: str) -> None:
    """Residents' encrypted data, scanners' key hashes, usage: readable by the service's user alone."""
    path = tmp_path / name
    umask = os.umask(0o022)  # the usual umask: files readable by everyone unless created otherwise
    try:
        app = create_app({"DATABASE_URL": f"sqlite:///{path}", "KEYS_DIR": str(keys_dir), "ENV": "development"})
        with app.app_context():
            db.init_db()
            with db.engine().connect() as connection:  # open: the write-ahead log and its index exist
                connection.exec_driver_sql("SELECT count(*) FROM residents")
                modes = {
                    file.name: stat.S_IMODE(file.stat().st_mode) for file in tmp_path.iterdir() if file.is_file()
                }
        db.engine(app).dispose()
    finally:
        os.umask(umask)
    assert {name, f"{name}-wal", f"{name}-shm"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o600), modes


def test_only_file_databases_get_a_writer(tmp_path: Path) -> None:
    assert SqliteWriter.for_url("postgresql+psycopg://u@127.0.0.1/db") is None
    assert SqliteWriter.for_url("sqlite://") is None
    assert SqliteWriter.for_url("sqlite:///:memory:") is None
    writer = SqliteWriter.for_url(f"sqlite:///{tmp_path / 'x.db'}")
    assert writer is not None
    assert writer.lock_path == str(tmp_path / "x.db.writer-lock")
    assert writer.log_path == str(tmp_path / "x.db-wal")


def test_the_lock_shuts_out_other_holders_until_released(tmp_path: Path) -> None:
    writer = SqliteWriter(str(tmp_path / "x.db"))
    with writer:
        assert held_elsewhere(writer.lock_path)
    assert not held_elsewhere(writer.lock_path)


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    writer = SqliteWriter(str(tmp_path / "x.db"))
    inside: list[int] = []
    overlaps: list[int] = []

    def work(index: int) -> None:
        for _ in range(200):
            with writer:
                inside.append(index)
                if len(inside) > 1:
                    overlaps.append(index)
                inside.remove(index)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


def test_a_failed_lock_leaves_the_thread_lock_free(tmp_path: Path) -> None:
    writer = SqliteWriter(str(tmp_path / "no-such-directory" / "x.db"))
    with pytest.raises(FileNotFoundError):
        writer.__enter__()
    with pytest.raises(FileNotFoundError):  # not a deadlock on the thread lock
        writer.__enter__()


def test_no_log_to_flush_is_not_an_error(tmp_path: Path) -> None:
    SqliteWriter(str(tmp_path / "x.db")).flush_log()


def test_each_decision_is_flushed_after_its_commit_outside_the_lock(
    app: Any, client: Any, keys_dir: Path, scanner_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = db.sqlite_writer(app)
    assert writer is not None
    flushes: list[tuple[bool, int]] = []
    flush_log = SqliteWriter.flush_log

    def observed_flush(self: SqliteWriter) -> None:
        # The lock is free and the decision is committed (another connection sees it).
        flushes.append((held_elsewhere(self.lock_path), usage_rows(app)))
        flush_log(self)

    monkeypatch.setattr(SqliteWriter, "flush_log", observed_flush)
    headers = {"Authorization": f"Bearer {scanner_key}"}
    for expected_rows in (1, 2):
        token = service_code(app, keys_dir)
        body = {"token": token, "scene": "clinic", "context": {"department": "cardiology"}}
        response = client.post(VERIFY, json=body, headers=headers)
        assert response.status_code == 200 and response.get_json()["code"] == "accepted"
        assert flushes[-1] == (False, expected_rows)
    # A rejection's usage record is flushed the same way.
    body = {"token": "not.a.code", "scene": "clinic", "context": {"department": "cardiology"}}
    response = client.post(VERIFY, json=body, headers=headers)
    assert response.get_json()["code"] == "malformed"
    assert flushes == [(False, 1), (False, 2), (False, 3)]


def test_the_pool_gets_its_connections_back_flushing_at_commit(
    app: Any, client: Any, keys_dir: Path, scanner_key: str
) -> None:
    body = {"token": service_code(app, keys_dir), "scene": "clinic", "context": {"department": "cardiology"}}
    client.post(VERIFY, json=body, headers={"Authorization": f"Bearer {scanner_key}"})
    engine = db.engine(app)
    connections = [engine.raw_connection() for _ in range(3)]  # the one the scan used among them
    try:
        for connection in connections:
            cursor = connection.cursor()
            cursor.execute("PRAGMA synchronous")
            assert cursor.fetchone()[0] == 2  # FULL
    finally:
        for connection in connections:
            connection.close()
