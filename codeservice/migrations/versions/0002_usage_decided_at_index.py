"""An index on usage_records.decided_at, for the retention job.

``flask --app codeservice usage prune`` deletes by ``decided_at`` alone; the
(sub, decided_at, id) index cannot serve that, so without this each batch
scanned the table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # if_not_exists: a dev database made by create_all from newer models has it already.
    op.create_index("ix_usage_records_decided_at", "usage_records", ["decided_at"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_usage_records_decided_at", table_name="usage_records")
