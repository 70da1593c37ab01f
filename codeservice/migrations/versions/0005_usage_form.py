"""usage_form: each usage record names its code's form (contract sections 5 and 9).

``online`` (the JWS of section 1), ``device`` (``RSD1:``) or ``paper``
(``RSP1:``). Records stored before are all JWS ones: the column's server
default, ``online``, is what they get, as is an uploaded record without
``form``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A dev database made by create_all from newer models has it already.
    if "form" in {column["name"] for column in sa.inspect(op.get_bind()).get_columns("usage_records")}:
        return
    op.add_column(
        "usage_records", sa.Column("form", sa.String(length=8), nullable=False, server_default="online")
    )


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("form")
