"""scanners_attended: a staffed scanner, the only kind that accepts paper codes (contract sections 6 and 9).

``scanners add --attended`` marks a scanner at a desk where a person checks
the ID card against a paper code's holder hint. Scanners added before are
unstaffed: the column's server default, false.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A dev database made by create_all from newer models has it already.
    if "attended" in {column["name"] for column in sa.inspect(op.get_bind()).get_columns("scanners")}:
        return
    op.add_column("scanners", sa.Column("attended", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("scanners") as batch:
        batch.drop_column("attended")
