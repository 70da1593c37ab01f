"""device_throttle: failed logins per device cookie.

A browser that has logged in to a phone holds a signed device cookie for it
(OWASP, "Slow Down Online Guessing Attacks with Device Cookies") and is
judged by that cookie's own failures, so a stranger's wrong passwords no
longer lock the owner out. This table counts them, by a keyed hash of the
cookie's nonce, as ``login_throttle`` counts a phone's.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # if_not_exists: a dev database made by create_all from newer models has it already.
    op.create_table(
        "device_throttle",
        sa.Column("device_hash", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("device_hash"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("device_throttle")
