"""usage_detail_jsonb: on PostgreSQL, ``usage_records.detail`` as ``jsonb``; SQLite keeps its JSON text.

The day report reads a member or two of every record's detail: ``jsonb`` is
stored parsed, so ``jsonb_to_record`` only looks the members up where
``json_to_record`` parsed each detail's text again (on the busiest day of
10 million records 0.47-0.54 s instead of 0.89-1.03 s). The column is
rewritten once (``ALTER ... TYPE jsonb``, every index rebuilt: minutes at 10
million records, the table locked meanwhile).

``jsonb`` cannot hold NUL, which ``json`` keeps as its escape ``\\u0000``.
Uploads and the verify path refuse a detail holding one (``codeservice.usage``),
so only records written otherwise (by hand, or before that check) can: their
``\\u0000`` becomes ``\\ufffd`` (U+FFFD, the replacement character) before the
cast, and how many records were changed is logged. ``jsonb`` also refuses a
lone surrogate's escape (``\\ud800``), which the service refuses as well: such a
detail written by hand fails the migration (nothing is changed), to be
mended by hand.

The roll-up's trigger function (0008) is made again on jsonb: the detail's
own type check, no NUL check, no cast. Downgrade casts back to ``json`` (each
detail's text is then jsonb's: members sorted, spaced) and restores 0008's function.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_rollup = importlib.import_module("codeservice.migrations.versions.0008_operator_console")

# The roll-up on jsonb: a detail that is no object is counted with blanks, as before.
_JSONB_DETAIL = "CASE WHEN jsonb_typeof({r}.detail) = 'object' THEN {r}.detail ELSE '{{}}'::jsonb END AS j"
POSTGRESQL_FUNCTION = f"""
CREATE OR REPLACE FUNCTION usage_hourly_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_rollup._postgresql_rollup("new_usage", "pg_backend_pid() % 8", _JSONB_DETAIL)};
    RETURN NULL;
END
$$
"""

# Each escaped NUL in a stored json detail's text as U+FFFD's escape. An escape is a backslash preceded by
# an even number of backslashes (none, or escaped ones): in "\\u0000" the backslash is itself escaped and
# "u0000" is plain text, kept as it is; in "\\\u0000" the third backslash starts a NUL's escape, replaced.
# strpos picks the records to look at (cheap: no regular expression on the others); the pattern then
# keeps those whose "u0000" follows an escaped backslash only, so that the count logged is exact.
_NUL = r"(?<!\\)((?:\\\\)*)\\u0000"
NUL_TO_REPLACEMENT = rf"""
UPDATE usage_records
SET detail = regexp_replace(detail::text, '{_NUL}', '\1\\ufffd', 'g')::json
WHERE strpos(detail::text, '\u0000') > 0 AND detail::text ~ '{_NUL}'
"""

log = logging.getLogger("codeservice.migrations")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite: JSON is text there; nothing to change
    columns = {column["name"]: column["type"] for column in sa.inspect(bind).get_columns("usage_records")}
    if isinstance(columns["detail"], JSONB):  # made by create_all from these models: only the function
        op.execute(POSTGRESQL_FUNCTION)
        return
    changed = bind.exec_driver_sql(NUL_TO_REPLACEMENT).rowcount
    if changed:
        log.warning("0010: %d usage record details held an escaped NUL, now U+FFFD (jsonb cannot hold NUL)", changed)
    op.execute("ALTER TABLE usage_records ALTER COLUMN detail TYPE jsonb USING detail::jsonb")
    op.execute(POSTGRESQL_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE usage_records ALTER COLUMN detail TYPE json USING detail::json")
    op.execute(_rollup.POSTGRESQL_FUNCTION)
