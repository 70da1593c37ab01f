"""devices_and_credentials: enrolled phones and the offline credentials issued (contract section 9).

``devices`` holds each resident's enrolled P-256 public keys; ``credentials``
every device and paper credential issued, by its ``cti``, so that a
withdrawn device's or a re-issued paper code's credentials can join the
revocation list (the index on ``(revoked_at, expires_at)`` serves that list).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A dev database made by create_all from newer models has them already.
    if "devices" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("public_key", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_devices_resident_id", "devices", ["resident_id"])
    op.create_table(
        "credentials",
        sa.Column("cti", sa.String(length=11), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=16), nullable=True),
        sa.Column("use", sa.String(length=8), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"]),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.PrimaryKeyConstraint("cti"),
    )
    op.create_index("ix_credentials_resident_id", "credentials", ["resident_id"])
    op.create_index("ix_credentials_device_id", "credentials", ["device_id"])
    op.create_index("ix_credentials_revoked_expires", "credentials", ["revoked_at", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_credentials_revoked_expires", table_name="credentials")
    op.drop_index("ix_credentials_device_id", table_name="credentials")
    op.drop_index("ix_credentials_resident_id", table_name="credentials")
    op.drop_table("credentials")
    op.drop_index("ix_devices_resident_id", table_name="devices")
    op.drop_table("devices")
