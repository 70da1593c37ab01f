"""usage_rollup_after_commit: PostgreSQL counts usage records into ``usage_hourly`` after their commit, not in it.

0008's statement trigger made every decision upsert a roll-up row in its own
transaction: measured with pgbench (``bench/decision_sql.py``, three rounds),
the usage record's INSERT cost the server 176-224 µs of CPU with the trigger
and 83-102 µs without; a whole clinic check-in 401-561 µs, 300-359 without
(after this migration: 304-349). Here the
trigger goes, and each record carries the id of the transaction that
inserted it (``rollup_xact``, the column's default
``pg_current_xact_id()``; a BRIN index, which costs an INSERT next to
nothing, finds a range of them). ``usage_hourly_roll_up()`` counts in the
records of every transaction older than the oldest one still running
(``pg_snapshot_xmin``: each of those has committed or rolled back, so its
records are visible or gone for good), from where the last roll-up
stopped (``usage_rollup_mark``), and moves the mark: each record is counted
once, after its commit. Roll-ups take turns on the mark's row lock.

Who rolls up (``codeservice.usage_rollup.roll_up``): every reader of
``usage_hourly`` first (the console's figures and reports, so they count
every record committed before they are read, as before), uploads once a
batch, the retention prune before each batch it deletes, and the verify path's
housekeeping (one decision in ``PURGE_EVERY``), which keeps the records not
yet counted to about a thousand.

Records stored before this migration were counted by the trigger: their
``rollup_xact`` is NULL and no roll-up reads them. Records inserted after it
(its ``ALTER TABLE`` holds off inserts until it commits) have one, whatever
their transaction's age, and the mark starts at 0: none is missed. The mark
row, if deleted, comes back at 0 (with ``usage_hourly`` emptied too, as a
test's clean-up does, every record is counted again from the start).

SQLite keeps 0008's row trigger: its writers take turns on the database's
write lock anyway, and its row ids can be reused after a delete, so they
cannot mark where a roll-up stopped; the column stays NULL there and the
mark unused. Downgrade locks the records against inserts, counts in every
one not yet counted, then restores the trigger on 0010's function.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_0008 = importlib.import_module("codeservice.migrations.versions.0008_operator_console")
_0010 = importlib.import_module("codeservice.migrations.versions.0010_usage_detail_jsonb")

XACT_DEFAULT = "ALTER TABLE usage_records ALTER COLUMN rollup_xact SET DEFAULT (pg_current_xact_id()::text::bigint)"

_PENDING = "(SELECT * FROM usage_records WHERE rollup_xact >= counted_to AND rollup_xact < finished_before)"
_NOT_COUNTED = "(SELECT * FROM usage_records WHERE rollup_xact >= (SELECT upto FROM usage_rollup_mark))"
ROLL_UP_FUNCTION = f"""
CREATE OR REPLACE FUNCTION usage_hourly_roll_up() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    counted_to bigint;  -- every transaction before this one is counted in
    finished_before bigint;  -- every transaction before this one has ended
BEGIN
    INSERT INTO usage_rollup_mark (id, upto) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;  -- emptied: from the start
    SELECT m.upto INTO counted_to FROM usage_rollup_mark AS m WHERE m.id = 1 FOR UPDATE;
    finished_before := pg_snapshot_xmin(pg_current_snapshot())::text::bigint;
    IF finished_before > counted_to THEN
        {_0008._postgresql_rollup(_PENDING, "0", _0010._JSONB_DETAIL)};
        UPDATE usage_rollup_mark SET upto = finished_before WHERE id = 1;
    END IF;
END
$$
"""


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if "rollup_xact" not in {column["name"] for column in inspector.get_columns("usage_records")}:
        op.add_column("usage_records", sa.Column("rollup_xact", sa.BigInteger(), nullable=True))
    if "ix_usage_records_rollup_xact" not in {index["name"] for index in inspector.get_indexes("usage_records")}:
        op.create_index(
            "ix_usage_records_rollup_xact",
            "usage_records",
            ["rollup_xact"],
            postgresql_using="brin",
            sqlite_where=sa.text("rollup_xact IS NOT NULL"),
        )
    if "usage_rollup_mark" not in inspector.get_table_names():
        op.create_table(
            "usage_rollup_mark",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("upto", sa.BigInteger(), nullable=False),
            sa.CheckConstraint("id = 1", name="ck_usage_rollup_mark_one_row"),
            sa.PrimaryKeyConstraint("id"),
        )
    if bind.scalar(sa.text("SELECT count(*) FROM usage_rollup_mark")) == 0:
        op.execute("INSERT INTO usage_rollup_mark (id, upto) VALUES (1, 0)")
    if bind.dialect.name != "postgresql":
        return
    op.execute(XACT_DEFAULT)
    op.execute(ROLL_UP_FUNCTION)
    op.execute("DROP TRIGGER IF EXISTS usage_hourly_add ON usage_records")
    op.execute("DROP FUNCTION IF EXISTS usage_hourly_add()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # No insert in flight (the lock waits for them, and holds off new ones until the trigger is back):
        # every record not yet counted is visible here, this transaction's own included.
        op.execute("LOCK TABLE usage_records IN SHARE ROW EXCLUSIVE MODE")
        op.execute(_0008._postgresql_rollup(_NOT_COUNTED, "0", _0010._JSONB_DETAIL))
        op.execute(_0010.POSTGRESQL_FUNCTION)
        op.execute(_0008.POSTGRESQL_TRIGGER)
        op.execute("DROP FUNCTION usage_hourly_roll_up()")
    op.drop_table("usage_rollup_mark")
    op.drop_index("ix_usage_records_rollup_xact", table_name="usage_records")
    op.drop_column("usage_records", "rollup_xact")
