"""The service's fixtures: every test here runs on a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PG_URL,
    accepted,
    add_scanner,
    ago,
    code_of,
    metro_scanner_key,
    new_keys_dir,
    record,
    registration,
    skip_or_fail,
    sub_of,
    upload,
)


@pytest.fixture(scope="session")
def postgres_schema() -> Any:
    """A private schema on the test PostgreSQL server for this test run."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    schema = f"cs_test_{os.getpid()}"
    engine = sqlalchemy.create_engine(PG_URL)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # any failure to reach it means "absent"
        engine.dispose()
        skip_or_fail(f"PostgreSQL is not reachable at {PG_URL}: {exc.__class__.__name__}")
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    engine.dispose()  # the fault tests restart the server: drop with a fresh connection
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every service test runs on a real SQLite file and on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'codeservice.db'}"
    return request.getfixturevalue("postgres_schema")


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return new_keys_dir(tmp_path / "keys")


@pytest.fixture
def app_config(database_url: str, keys_dir: Path, tmp_path: Path) -> dict[str, Any]:
    return {
        "DATABASE_URL": database_url,
        "KEYS_DIR": str(keys_dir),
        "ENV": "development",
        "RATE_LIMITS": "off",
    }


@pytest.fixture
def app(app_config: dict[str, Any]) -> Any:
    from codeservice import create_app, db

    application = create_app(app_config)
    application.testing = True
    with application.app_context():
        db.init_db()
    yield application
    with application.app_context():
        from codeservice.models import Base

        engine = db.engine()
        if engine.dialect.name == "postgresql":
            with engine.begin() as connection:
                for table in reversed(Base.metadata.sorted_tables):
                    connection.execute(table.delete())
        engine.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def scanner_key(runner: Any) -> str:
    """A scanner key of venue ``v1``, device ``d1``, for every scene."""
    return add_scanner(runner)[1]


@pytest.fixture
def resident(client: Any) -> dict[str, Any]:
    """A registered resident's registration body (with the password in the clear)."""
    body = registration()
    response = client.post("/api/v1/residents", json=body)
    assert response.status_code == 201, response.get_json()
    return body


@pytest.fixture
def logged_in(client: Any, resident: dict[str, Any]) -> Any:
    """The test client, logged in as ``resident``."""
    response = client.post("/api/v1/session", json={"phone": resident["phone"], "password": resident["password"]})
    assert response.status_code == 200, response.get_json()
    return client


@pytest.fixture
def key(runner: Any) -> str:
    """A scanner key of venue ``metro-1``, device ``gate-7``, for transit, venue and clinic (usage uploads)."""
    return metro_scanner_key(runner)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright (python) is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def sub(logged_in: Any) -> str:
    """The logged-in resident's code id."""
    return sub_of(code_of(logged_in))


@pytest.fixture
def a_day(client: Any, key: str, sub: str) -> list[dict[str, Any]]:
    """A resident's day: in and out of the metro, a clinic, a venue, a third-party refusal."""
    records = [
        record(
            ago(hours=5), sub=sub, detail={"station": "人民广场", "direction": "in", "line": "1", "fare_cents": None}
        ),
        record(
            ago(hours=4),
            sub=sub,
            detail={
                "station": "陆家嘴", "direction": "out", "line": "2", "fare_cents": 300, "entry_station": "人民广场"
            },
        ),
        record(
            ago(hours=3), sub=sub, scene="clinic", ok=False, code="already_checked_in",
            detail={"department": "内科", "appointment_id": None},
        ),
        record(ago(hours=2), sub=sub, scene="venue", ok=False, code="replayed", detail={}),
        record(
            ago(hours=1),
            sub=sub,
            scene="venue",
            detail={"venue_id": "metro-1", "party_size": 3, "reservation_id": "R-88"},
        ),
        record(ago(minutes=10), sub=sub, ok=False, code="gate_jammed", detail={"station": "B3"}),
    ]
    assert accepted(upload(client, key, records)) == (len(records), 0)
    return records
