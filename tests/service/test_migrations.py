"""Alembic owns the schema: head matches the models, upgrades keep data, init-db repeats."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from servers import private_schema
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

from codeservice import create_app, db, migrations
from codeservice.models import Base
from codeservice.usage_rollup import roll_up


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with private_schema("cs_mig") as url:
        yield url


@pytest.fixture
def app(fresh_url: str, keys_dir: Path) -> Iterator[Any]:
    application = create_app({"DATABASE_URL": fresh_url, "KEYS_DIR": str(keys_dir), "ENV": "development"})
    application.testing = True
    yield application
    db.engine(application).dispose()


@pytest.fixture
def engine(app: Any) -> Engine:
    return db.engine(app)


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return migrations.current_revision(connection)


def head(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return ScriptDirectory.from_config(migrations.alembic_config(connection)).get_current_head()


def test_migrated_schema_is_the_models_schema(app: Any, engine: Engine) -> None:
    db.init_db(app)

    assert schema_differences(engine) == []
    assert revision(engine) == head(engine)
    indexes = {
        table: {ix["name"] for ix in inspect(engine).get_indexes(table)}
        for table in ("residents", "usage_records", "seen_codes", "scene_state", "devices", "credentials")
    }
    assert "ix_residents_revoked_at" in indexes["residents"]
    assert "ix_usage_records_sub_decided" in indexes["usage_records"]
    assert "ix_devices_resident_id" in indexes["devices"]
    assert "ix_credentials_revoked_expires" in indexes["credentials"]


def test_init_db_twice_is_a_no_op(app: Any, engine: Engine) -> None:
    db.init_db(app)
    before = revision(engine)

    db.init_db(app)

    assert revision(engine) == before == head(engine)
    assert schema_differences(engine) == []


RESIDENT = {
    "id": 1,
    "code_id": "q1w2e3r4t5y6u7i8",
    "name": "张*明",
    "name_encrypted": b"\x00name",
    "id_type": "resident_id",
    "id_number_encrypted": b"\x00id",
    "id_number_hash": "a" * 64,
    "phone_encrypted": b"\x00phone",
    "phone_hash": "b" * 64,
    "password_hash": "scrypt:x",
    "auth_epoch": 3,
    "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
}
USAGE = {
    "id": "0b0e9b9e-6c55-4a57-8c0a-2c9f3f6b1d10",
    "scene": "venue",
    "sub": "q1w2e3r4t5y6u7i8",
    "decided_at": datetime(2026, 1, 2, 3, 5, 0, tzinfo=UTC),
    "ok": True,
    "code": "ok",
    "detail": '{"gate": "north"}',
    "online": False,
    "received_at": datetime(2026, 1, 2, 3, 6, 0, tzinfo=UTC),
}


def insert(connection: Any, table: str, row: dict[str, Any]) -> None:
    # Plain SQL against the first revision's columns: the models may have moved on.
    columns = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)


def test_upgrading_from_the_first_revision_keeps_data(app: Any, engine: Engine) -> None:
    with engine.connect() as connection:
        first = ScriptDirectory.from_config(migrations.alembic_config(connection)).get_base()
    with engine.begin() as connection:
        migrations.upgrade(connection, first)
    assert revision(engine) == first
    with engine.begin() as connection:
        insert(connection, "residents", RESIDENT)
        insert(connection, "usage_records", USAGE)

    db.init_db(app)

    assert revision(engine) == head(engine)
    with engine.connect() as connection:
        resident = connection.execute(text("SELECT code_id, name, auth_epoch, phone_hash FROM residents")).one()
        usage = connection.execute(text("SELECT id, sub, code, ok FROM usage_records")).one()
    assert tuple(resident) == (RESIDENT["code_id"], RESIDENT["name"], 3, RESIDENT["phone_hash"])
    assert tuple(usage) == (USAGE["id"], USAGE["sub"], "ok", True)


def test_a_create_all_database_is_stamped_not_broken(app: Any, engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        insert(connection, "residents", RESIDENT)
    assert "alembic_version" not in inspect(engine).get_table_names()

    db.init_db(app)

    assert revision(engine) == head(engine)
    assert schema_differences(engine) == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT code_id FROM residents")).scalar_one() == RESIDENT["code_id"]


def test_a_partial_database_is_refused(app: Any, engine: Engine) -> None:
    Base.metadata.tables["residents"].create(engine)

    with pytest.raises(RuntimeError, match="some of codeservice's tables"):
        db.init_db(app)


def test_init_db_command_succeeds_twice(app: Any, engine: Engine) -> None:
    runner = app.test_cli_runner()
    shown = engine.url.render_as_string(hide_password=True)

    for _ in range(2):
        # `flask` pushes an app context itself; the test runner pushes one only
        # for commands declared with @with_appcontext, which init-db is not.
        with app.app_context():
            result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == f"Database ready: {shown}"

    assert revision(engine) == head(engine)


def function_source(engine: Engine, name: str) -> str:
    """PostgreSQL: the body of the function ``name`` in the current schema."""
    with engine.connect() as connection:
        return str(
            connection.scalar(
                text(
                    "SELECT prosrc FROM pg_proc WHERE proname = :name"
                    " AND pronamespace = current_schema()::regnamespace"
                ),
                {"name": name},
            )
        )


def detail_type(engine: Engine) -> str:
    columns = {column["name"]: column for column in inspect(engine).get_columns("usage_records")}
    return type(columns["detail"]["type"]).__name__


def test_detail_is_jsonb_on_postgresql_and_back_on_downgrade(app: Any, engine: Engine) -> None:
    db.init_db(app)
    postgres = engine.dialect.name == "postgresql"
    assert detail_type(engine) == ("JSONB" if postgres else "JSON")
    with engine.begin() as connection:
        command.downgrade(migrations.alembic_config(connection), "0009")
    assert revision(engine) == "0009"
    assert detail_type(engine) == "JSON"
    if postgres:  # 0008's roll-up function again, on json
        source = function_source(engine, "usage_hourly_add")
        assert "json_typeof(s.detail::json)" in source and "jsonb_typeof(s.detail)" not in source
    with engine.begin() as connection:
        insert(connection, "usage_records", USAGE)

    db.init_db(app)

    assert revision(engine) == head(engine)
    assert schema_differences(engine) == []
    with engine.begin() as connection:  # the roll-up on jsonb (PostgreSQL: after the commit, 0012)
        insert(connection, "usage_records", {**USAGE, "id": "1" * 36})
    with Session(engine) as session:
        roll_up(session)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT sum(records) FROM usage_hourly")) == 2
        assert connection.execute(text("SELECT detail FROM usage_records")).scalars().all() in (
            [{"gate": "north"}] * 2, ['{"gate": "north"}'] * 2
        )


@pytest.mark.parametrize("fresh_url", ["postgresql"], indirect=True)
def test_an_escaped_nul_in_a_json_detail_becomes_u_fffd(
    app: Any, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # Written by hand: uploads and the verify path refuse a NUL. Only a real escape is one: "\\u0000"
    # (an escaped backslash, then the text u0000) stays as it is.
    details = {
        "a" * 36: r'{"station": "S\u00009\u0000", "line": "\\u0000", "note": "\\\u0000"}',
        "b" * 36: '{"station": "S9"}',
        "c" * 36: r'{"line": "\\u0000"}',
    }
    with engine.begin() as connection:
        migrations.upgrade(connection, "0009")
        for record_id, detail in details.items():
            insert(connection, "usage_records", {**USAGE, "id": record_id, "detail": detail})
    with caplog.at_level("WARNING", logger="codeservice.migrations"):
        db.init_db(app)

    with engine.connect() as connection:
        stored = dict(connection.execute(text("SELECT id, detail FROM usage_records")).all())
    assert stored == {
        "a" * 36: {"station": "S\ufffd9\ufffd", "line": "\\u0000", "note": "\\\ufffd"},
        "b" * 36: {"station": "S9"},
        "c" * 36: {"line": "\\u0000"},
    }
    assert "1 usage record details held an escaped NUL" in caplog.text


CLAIM_AND_READ = "SELECT claimed, state_values FROM codeservice_claim_and_read(:jti, 2000000000, :keys, 100)"
# (jti to claim or None, the keys, the answer): none, missing, expired, repeated, JSON null, a claim twice
CLAIMS_AND_READS = [
    (None, [], (True, [])),
    (None, ["a"], (True, [{"x": 1}])),
    (None, ["missing", "expired"], (True, [None, None])),
    (None, ["a", "null", "missing", "a"], (True, [{"x": 1}, None, None, {"x": 1}])),
    ("jti-1", ["a"], (True, [{"x": 1}])),
    ("jti-1", ["a"], (False, None)),
]


def claims_and_reads(engine: Engine) -> list[tuple[Any, ...]]:
    """Each of CLAIMS_AND_READS's calls, in one transaction each (a claim commits)."""
    answers = []
    for jti, keys, _ in CLAIMS_AND_READS:
        with engine.begin() as connection:
            answers.append(tuple(connection.execute(text(CLAIM_AND_READ), {"jti": jti, "keys": keys}).one()))
    return answers


@pytest.mark.parametrize("fresh_url", ["postgresql"], indirect=True)
def test_claim_and_read_answers_as_0009s_did_and_0009s_comes_back_on_downgrade(app: Any, engine: Engine) -> None:
    db.init_db(app)
    with engine.begin() as connection:
        for key, value, expires_at in (("a", '{"x": 1}', 200), ("null", "null", 200), ("expired", "1", 99)):
            insert(connection, "scene_state", {"key": key, "value": value, "expires_at": expires_at})
    expected = [answer for *_, answer in CLAIMS_AND_READS]

    assert "FOREACH" in function_source(engine, "codeservice_claim_and_read")
    assert claims_and_reads(engine) == expected  # 0011's, key by key
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM seen_codes"))
        command.downgrade(migrations.alembic_config(connection), "0010")
    assert "array_agg" in function_source(engine, "codeservice_claim_and_read")
    assert claims_and_reads(engine) == expected  # 0009's, one aggregate query
    db.init_db(app)
    assert revision(engine) == head(engine)
    assert "FOREACH" in function_source(engine, "codeservice_claim_and_read")
    assert schema_differences(engine) == []


def hourly_records(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT coalesce(sum(records), 0) FROM usage_hourly")))


@pytest.mark.parametrize("fresh_url", ["postgresql"], indirect=True)
def test_postgresql_counts_each_record_once_after_its_commit_and_0008s_trigger_comes_back_on_downgrade(
    app: Any, engine: Engine
) -> None:
    db.init_db(app)
    with engine.connect() as connection:  # no trigger: 0012 counts after the commit
        assert connection.scalar(text("SELECT count(*) FROM pg_trigger WHERE tgname = 'usage_hourly_add'")) == 0
    with engine.begin() as connection:
        insert(connection, "usage_records", USAGE)
    open_transaction = engine.connect()
    open_transaction.begin()
    insert(open_transaction, "usage_records", {**USAGE, "id": "1" * 36})  # not committed yet
    with engine.begin() as connection:  # committed after the open one began: still waits for it
        insert(connection, "usage_records", {**USAGE, "id": "2" * 36})
    assert hourly_records(engine) == 0

    with Session(engine) as session:
        roll_up(session)
    assert hourly_records(engine) == 1  # the open transaction holds the later one back: counted next time

    open_transaction.commit()
    open_transaction.close()
    with Session(engine) as session:
        roll_up(session)
        roll_up(session)  # nothing left: each record once
    assert hourly_records(engine) == 3

    with engine.begin() as connection:
        insert(connection, "usage_records", {**USAGE, "id": "3" * 36})
        command.downgrade(migrations.alembic_config(connection), "0011")  # counts in what is pending, its own too
    assert hourly_records(engine) == 4
    assert "jsonb_typeof" in function_source(engine, "usage_hourly_add")
    with engine.begin() as connection:  # 0008's trigger again
        insert(connection, "usage_records", {**USAGE, "id": "4" * 36})
    assert hourly_records(engine) == 5

    db.init_db(app)
    assert revision(engine) == head(engine)
    assert schema_differences(engine) == []
    assert hourly_records(engine) == 5  # what the trigger counted is not counted again
