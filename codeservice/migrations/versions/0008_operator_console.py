"""operator_console: operators, scanners' health, the hourly roll-up of usage and its triggers.

- ``operators``: the console's accounts (``operators add``); ``venues`` empty
  means every venue.
- ``scanner_health``: per scanner, its last upload and the status its sync
  last reported (``Codeservice-Verifier-Status``).
- ``usage_hourly``: the usage records counted per UTC hour and per what the
  console groups by (venue, scene, form, decision, transit line, station,
  direction and concession, clinic department), with fare, people and
  capacity. It is filled by a trigger on ``usage_records``, so whatever
  inserts records (the verify path, uploads, a bulk load, a server function)
  keeps it exact; records already there are counted in once, here.
  PostgreSQL: one statement-level trigger with a transition table, so an
  upload of 1000 records is one grouped upsert, not 1000; its rows are
  spread over ``shard`` (the backend's pid modulo 8) so that concurrent
  transactions scanning the same kind of thing in the same hour do not
  queue on one row's lock until each other's commit. SQLite: a row trigger
  (SQLite has only those); its writers take turns anyway.
- Two indexes on ``usage_records``: ``(venue_id, decided_at)`` for one
  venue's day of records (the export), ``(scanner_id, decided_at)`` for each
  scanner's last decision.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = "hour_start, venue_id, scene, form, ok, code, line, station, direction, category, department"
COLUMNS = f"{KEY}, shard, records, fare_cents, people, capacity"


def _dimensions(r: str, hour_start: str, text: Callable[[str, int], str], number: Callable[[str], str]) -> str:
    """The roll-up's key and measures of a record ``r``, given the dialect's hour, text member and number member."""
    return f"""
        {hour_start} AS hour_start,
        coalesce({r}.venue_id, '') AS venue_id,
        coalesce({r}.scene, '') AS scene,
        coalesce({r}.form, 'online') AS form,
        {r}.ok AS ok,
        {r}.code AS code,
        CASE WHEN {r}.scene = 'transit' THEN {text("line", 200)} ELSE '' END AS line,
        CASE WHEN {r}.scene = 'transit' THEN {text("station", 200)} ELSE '' END AS station,
        CASE WHEN {r}.scene = 'transit' THEN {text("direction", 8)} ELSE '' END AS direction,
        CASE WHEN {r}.scene = 'transit' AND {r}.ok THEN {text("category", 16)} ELSE '' END AS category,
        CASE WHEN {r}.scene = 'clinic' THEN {text("department", 200)} ELSE '' END AS department,
        CASE WHEN {r}.scene = 'transit' AND {r}.ok THEN {number("fare_cents")} END AS fare,
        CASE WHEN {r}.scene = 'venue' AND {r}.ok THEN coalesce({number("party_size")}, 1) END AS people,
        CASE WHEN {r}.scene = 'venue' THEN {number("capacity")} END AS capacity
    """


def _postgresql_dimensions(r: str) -> str:
    """The dimensions on PostgreSQL: ``j`` is the record's detail as jsonb, parsed once.

    As on SQLite, a text member counts only when it is a JSON string, a number only when a JSON integer
    of at most 12 digits: a detail of any other shape is counted with blanks, never refused.
    """

    def text(name: str, size: int) -> str:
        return f"CASE WHEN jsonb_typeof(j->'{name}') = 'string' THEN left(j->>'{name}', {size}) ELSE '' END"

    def number(name: str) -> str:
        return (
            f"CASE WHEN jsonb_typeof(j->'{name}') = 'number' AND (j->>'{name}') ~ '^[0-9]{{1,12}}$' "
            f"THEN (j->>'{name}')::bigint END"
        )

    return _dimensions(r, f"(floor(extract(epoch FROM {r}.decided_at) / 3600) * 3600)::bigint", text, number)


# A detail holding an escaped NUL (json keeps it, jsonb and text cannot) is counted with blanks, never refused.
# detail::json: nothing on a json column; a database made by create_all from newer models has jsonb (0010).
_POSTGRESQL_DETAIL = (
    "CASE WHEN json_typeof({r}.detail::json) = 'object' AND strpos({r}.detail::text, '\\u0000') = 0 "
    "THEN {r}.detail::jsonb ELSE '{{}}'::jsonb END AS j"
)


def _postgresql_rollup(source: str, shard: str, detail: str = _POSTGRESQL_DETAIL) -> str:
    """The grouped upsert of ``source``'s records; ``detail`` makes ``j`` (0010 passes jsonb's)."""
    return f"""
        INSERT INTO usage_hourly AS h ({COLUMNS})
        SELECT {KEY}, {shard}, count(*), coalesce(sum(fare), 0), coalesce(sum(people), 0), max(capacity)
        FROM (SELECT {_postgresql_dimensions("r")}
              FROM (SELECT s.*, {detail.format(r="s")} FROM {source} AS s) AS r) AS d
        GROUP BY {KEY}
        ORDER BY {KEY}
        ON CONFLICT ({KEY}, shard) DO UPDATE SET
            records = h.records + excluded.records,
            fare_cents = h.fare_cents + excluded.fare_cents,
            people = h.people + excluded.people,
            capacity = greatest(h.capacity, excluded.capacity)
    """


POSTGRESQL_FUNCTION = f"""
CREATE OR REPLACE FUNCTION usage_hourly_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_postgresql_rollup("new_usage", "pg_backend_pid() % 8")};
    RETURN NULL;
END
$$
"""
POSTGRESQL_TRIGGER = """
CREATE TRIGGER usage_hourly_add AFTER INSERT ON usage_records
REFERENCING NEW TABLE AS new_usage FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_add()
"""


def _sqlite_dimensions(r: str) -> str:
    """The same on SQLite, ``d`` being the record's detail when it is valid JSON (else '{}')."""

    def text(name: str, size: int) -> str:
        return (
            f"CASE WHEN json_type(d, '$.{name}') = 'text' "
            f"THEN substr(json_extract(d, '$.{name}'), 1, {size}) ELSE '' END"
        )

    def number(name: str) -> str:
        return (
            f"CASE WHEN json_type(d, '$.{name}') = 'integer' AND json_extract(d, '$.{name}') >= 0 "
            f"THEN json_extract(d, '$.{name}') END"
        )

    return _dimensions(r, f"coalesce(CAST(strftime('%s', {r}.decided_at) AS INTEGER) / 3600 * 3600, 0)", text, number)


_SQLITE_DETAIL = "CASE WHEN json_valid({r}.detail) THEN {r}.detail ELSE '{{}}' END AS d"

SQLITE_TRIGGER = f"""
CREATE TRIGGER usage_hourly_add AFTER INSERT ON usage_records
BEGIN
    INSERT INTO usage_hourly ({COLUMNS})
    SELECT {KEY}, 0, 1, coalesce(fare, 0), coalesce(people, 0), capacity
    FROM (SELECT {_sqlite_dimensions("r")}
          FROM (SELECT NEW.decided_at AS decided_at, NEW.venue_id AS venue_id, NEW.scene AS scene,
                       NEW.form AS form, NEW.ok AS ok, NEW.code AS code,
                       {_SQLITE_DETAIL.format(r="NEW")}) AS r)
    WHERE true
    ON CONFLICT ({KEY}, shard) DO UPDATE SET
        records = records + excluded.records,
        fare_cents = fare_cents + excluded.fare_cents,
        people = people + excluded.people,
        capacity = CASE WHEN capacity IS NULL THEN excluded.capacity
                        WHEN excluded.capacity IS NULL THEN capacity
                        ELSE max(capacity, excluded.capacity) END;
END
"""
SQLITE_BACKFILL = f"""
INSERT INTO usage_hourly ({COLUMNS})
SELECT {KEY}, 0, count(*), coalesce(sum(fare), 0), coalesce(sum(people), 0), max(capacity)
FROM (SELECT {_sqlite_dimensions("r")}
      FROM (SELECT u.decided_at, u.venue_id, u.scene, u.form, u.ok, u.code, {_SQLITE_DETAIL.format(r="u")}
            FROM usage_records AS u) AS r)
GROUP BY {KEY}
"""


def upgrade() -> None:
    bind = op.get_bind()
    tables = sa.inspect(bind).get_table_names()
    if "operators" not in tables:
        op.create_table(
            "operators",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("username", sa.String(length=64), nullable=False),
            sa.Column("password_hash", sa.String(length=255), nullable=False),
            sa.Column("must_change_password", sa.Boolean(), nullable=False),
            sa.Column("venues", sa.JSON(), nullable=False),
            sa.Column("auth_epoch", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("username"),
        )
    if "scanner_health" not in tables:
        op.create_table(
            "scanner_health",
            sa.Column("scanner_id", sa.Integer(), nullable=False),
            sa.Column("last_upload_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("keys_age", sa.BigInteger(), nullable=True),
            sa.Column("revocations_age", sa.BigInteger(), nullable=True),
            sa.Column("clock_offset", sa.BigInteger(), nullable=True),
            sa.Column("pending", sa.BigInteger(), nullable=True),
            sa.ForeignKeyConstraint(["scanner_id"], ["scanners.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("scanner_id"),
        )
    indexes = {index["name"] for index in sa.inspect(bind).get_indexes("usage_records")}
    if "ix_usage_records_venue_decided" not in indexes:
        op.create_index("ix_usage_records_venue_decided", "usage_records", ["venue_id", "decided_at"])
    if "ix_usage_records_scanner_decided" not in indexes:
        op.create_index("ix_usage_records_scanner_decided", "usage_records", ["scanner_id", "decided_at"])
    if "usage_hourly" not in tables:
        op.create_table(
            "usage_hourly",
            sa.Column("hour_start", sa.BigInteger(), nullable=False),
            sa.Column("venue_id", sa.String(length=100), nullable=False),
            sa.Column("scene", sa.String(length=64), nullable=False),
            sa.Column("form", sa.String(length=8), nullable=False),
            sa.Column("ok", sa.Boolean(), nullable=False),
            sa.Column("code", sa.String(length=32), nullable=False),
            sa.Column("line", sa.String(length=200), nullable=False),
            sa.Column("station", sa.String(length=200), nullable=False),
            sa.Column("direction", sa.String(length=8), nullable=False),
            sa.Column("category", sa.String(length=16), nullable=False),
            sa.Column("department", sa.String(length=200), nullable=False),
            sa.Column("shard", sa.Integer(), nullable=False),
            sa.Column("records", sa.BigInteger(), nullable=False),
            sa.Column("fare_cents", sa.BigInteger(), nullable=False),
            sa.Column("people", sa.BigInteger(), nullable=False),
            sa.Column("capacity", sa.BigInteger(), nullable=True),
            sa.PrimaryKeyConstraint(
                "hour_start", "venue_id", "scene", "form", "ok", "code", "line", "station", "direction",
                "category", "department", "shard",
            ),
        )
    install_rollup(bind)


def install_rollup(bind: sa.Connection) -> None:
    """The trigger (and its function), and the records already stored counted in; idempotent."""
    if bind.dialect.name == "postgresql":
        exists = bind.scalar(
            sa.text("SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE t.tgname = 'usage_hourly_add' AND c.oid = to_regclass('usage_records')")
        )
        op.execute(POSTGRESQL_FUNCTION)
        if not exists:
            op.execute("DELETE FROM usage_hourly")
            op.execute(_postgresql_rollup("usage_records", "0"))
            op.execute(POSTGRESQL_TRIGGER)
    elif bind.dialect.name == "sqlite":
        exists = bind.scalar(
            sa.text("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'usage_hourly_add'")
        )
        if not exists:
            op.execute("DELETE FROM usage_hourly")
            op.execute(SQLITE_BACKFILL)
            op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    bind = op.get_bind()
    on_table = " ON usage_records" if bind.dialect.name == "postgresql" else ""
    op.execute("DROP TRIGGER IF EXISTS usage_hourly_add" + on_table)
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS usage_hourly_add()")
    op.drop_table("usage_hourly")
    op.drop_index("ix_usage_records_scanner_decided", table_name="usage_records")
    op.drop_index("ix_usage_records_venue_decided", table_name="usage_records")
    op.drop_table("scanner_health")
    op.drop_table("operators")
