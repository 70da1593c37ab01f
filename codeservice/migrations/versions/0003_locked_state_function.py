"""PostgreSQL: lock a scene-state key and read it in one round trip.

The verify path locks a state key (a transaction advisory lock) before it
reads it, so two presentations of one resident's codes cannot both see "not
yet checked in". As two statements that was two round trips per key. A
VOLATILE PL/pgSQL function takes a fresh snapshot for each query it runs,
so its SELECT, run after the lock is granted, sees what the previous holder
committed: the same guarantee, one round trip. SQLite has no use for it (its
writers take the whole database's write lock).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCKED_STATE = """
CREATE OR REPLACE FUNCTION codeservice_locked_state(state_key text, now_ts bigint) RETURNS json
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(state_key, 0));
    RETURN (SELECT value FROM scene_state WHERE key = state_key AND expires_at >= now_ts);
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(LOCKED_STATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS codeservice_locked_state(text, bigint)")
