"""The Alembic migration environment: it owns the database schema.

It lives inside the package so that it ships with it: ``codeservice.db``
builds an Alembic ``Config`` pointing here, so no ``alembic.ini`` is needed.
Apply with ``flask --app codeservice init-db``. A new revision, from a
checkout, against a database at head::

    from alembic import command
    from codeservice import create_app, db, migrations

    app = create_app()
    with db.engine(app).begin() as connection:
        command.revision(migrations.alembic_config(connection), "what changed",
                         autogenerate=True, rev_id="0002")

then review the generated file by hand (``tests/test_migrations.py`` checks
that head matches ``codeservice.models``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

SCRIPT_LOCATION = Path(__file__).parent
FIRST_REVISION = "0001"
"""The revision a database made by ``create_all`` (before migrations) is at."""

_LOCK_KEY = 0x636F6465  # "code": one migrating process per PostgreSQL database at a time


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration, built here: no ``alembic.ini`` is read."""
    config = Config()
    # Config values go through configparser interpolation: escape any "%".
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Bring the database on ``connection`` to ``revision``; safe to repeat.

    Run it inside a transaction (``engine.begin()``): the whole upgrade
    commits or nothing does.
    """
    if connection.dialect.name == "postgresql":
        # Two instances starting together would otherwise both create tables.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    config = alembic_config(connection)
    if _made_by_create_all(connection):
        # A database from before migrations (init_db used create_all): it has
        # the tables but no alembic_version. Its schema is revision 0001's, so
        # record that instead of failing to create tables that exist.
        command.stamp(config, FIRST_REVISION)
    command.upgrade(config, revision)


def _made_by_create_all(connection: Connection) -> bool:
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" in tables:
        return False
    first = {"residents", "login_throttle", "scanners", "usage_records", "seen_codes", "scene_state"}
    present = tables & first
    if not present:
        return False
    if present != first:
        raise RuntimeError(
            f"the database has some of codeservice's tables ({', '.join(sorted(present))}) "
            "but not all, and no alembic_version table: it was not made by this service's "
            "init-db; migrate or recreate it by hand"
        )
    return True
