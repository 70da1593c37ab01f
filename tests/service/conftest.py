"""The service's fixtures: every test here runs on a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    PG_URL,
    add_scanner,
    metro_scanner_key,
    new_keys_dir,
    registration,
    skip_or_fail,
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
    except Exception as exc:  # noqa: BLE001 - any failure to reach it means "absent"
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
