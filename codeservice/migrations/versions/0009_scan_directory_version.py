"""scan_directory_version, its triggers, and PostgreSQL's claim-and-read: the verify path in two round trips.

1. ``scan_directory_version``: one row whose ``version`` takes a new random
   value whenever the scanners, a resident's revocation or a credential's
   revocation change, set by triggers here, whatever writes the change (the
   CLI, the API, an operator's SQL). Each process keeps the scanners and the
   revocation list in memory (``codeservice.scan_cache``) and reads this row
   at most every few seconds to know whether to load them again. A random
   value, not a count: a row deleted and made again cannot repeat the value a
   process holds. Device enrolment inserts credentials all day long; only a
   credential inserted already revoked changes the row.
2. PostgreSQL: ``codeservice_claim_and_read(jti, expires_at, keys, now)``,
   the first of a decision's two round trips: claim the code (its ``jti``
   into ``seen_codes``; none for a paper code), then, if the claim held, take
   each scene state key's transaction advisory lock (in one order, so that
   two decisions never wait on each other) and read the keys' values. A
   VOLATILE PL/pgSQL function takes a fresh snapshot for each query, so the
   read, made after the locks are granted, sees what their previous holders
   committed (as ``codeservice_locked_state`` of 0003, kept for a key a scene
   asks for after the others).

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLAIM_AND_READ = """
CREATE OR REPLACE FUNCTION codeservice_claim_and_read(
    claim_jti text, claim_expires_at bigint, state_keys text[], now_ts bigint,
    OUT claimed boolean, OUT state_values json[]
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    lock_id bigint;
BEGIN
    IF claim_jti IS NOT NULL THEN
        INSERT INTO seen_codes (jti, expires_at) VALUES (claim_jti, claim_expires_at) ON CONFLICT (jti) DO NOTHING;
        IF NOT FOUND THEN
            claimed := false;
            RETURN;
        END IF;
    END IF;
    claimed := true;
    FOR lock_id IN SELECT DISTINCT hashtextextended(k, 0) FROM unnest(state_keys) AS k ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(lock_id);
    END LOOP;
    SELECT coalesce(array_agg(s.value ORDER BY k.n), '{}') INTO state_values
    FROM unnest(state_keys) WITH ORDINALITY AS k(key, n)
    LEFT JOIN scene_state s ON s.key = k.key AND s.expires_at >= now_ts;
END
$$
"""

POSTGRES_CHANGED = """
CREATE OR REPLACE FUNCTION codeservice_scan_directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO scan_directory_version (id, version) VALUES (1, (random() * 4503599627370496)::bigint)
    ON CONFLICT (id) DO UPDATE SET version = excluded.version;
    RETURN NULL;
END
$$
"""

# (trigger name, table, PostgreSQL's event and level, SQLite's event, the row's condition or None)
TRIGGERS = (
    ("scanners_changed_insert", "scanners", "INSERT", "INSERT", None),
    ("scanners_changed_update", "scanners", "UPDATE", "UPDATE", None),
    ("scanners_changed_delete", "scanners", "DELETE", "DELETE", None),
    (
        "residents_revocation_changed",
        "residents",
        "UPDATE",
        "UPDATE OF revoked_at, code_id",
        "NEW.revoked_at IS DISTINCT FROM OLD.revoked_at OR NEW.code_id IS DISTINCT FROM OLD.code_id",
    ),
    ("residents_revoked_inserted", "residents", "INSERT", "INSERT", "NEW.revoked_at IS NOT NULL"),
    (
        "credentials_revocation_changed",
        "credentials",
        "UPDATE",
        "UPDATE OF revoked_at, cti",
        "NEW.revoked_at IS DISTINCT FROM OLD.revoked_at OR NEW.cti IS DISTINCT FROM OLD.cti",
    ),
    ("credentials_revoked_inserted", "credentials", "INSERT", "INSERT", "NEW.revoked_at IS NOT NULL"),
)
SQLITE_BUMP = (
    "INSERT INTO scan_directory_version (id, version) VALUES (1, random())"
    " ON CONFLICT (id) DO UPDATE SET version = excluded.version"
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # A dev database made by create_all from newer models has the table already.
    if "scan_directory_version" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "scan_directory_version",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("version", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.execute("INSERT INTO scan_directory_version (id, version) VALUES (1, 0)")
    if postgres:
        op.execute(CLAIM_AND_READ)
        op.execute(POSTGRES_CHANGED)
    for name, table, pg_event, sqlite_event, condition in TRIGGERS:
        if postgres:
            level = "FOR EACH STATEMENT" if condition is None else f"FOR EACH ROW WHEN ({condition})"
            op.execute(
                f"CREATE TRIGGER {name} AFTER {pg_event} ON {table} {level}"
                " EXECUTE FUNCTION codeservice_scan_directory_changed()"
            )
        else:
            when = "" if condition is None else " WHEN " + condition.replace("IS DISTINCT FROM", "IS NOT")
            op.execute(
                f"CREATE TRIGGER {name} AFTER {sqlite_event} ON {table} FOR EACH ROW{when} BEGIN {SQLITE_BUMP}; END"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, table, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}" if postgres else f"DROP TRIGGER IF EXISTS {name}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS codeservice_scan_directory_changed()")
        op.execute("DROP FUNCTION IF EXISTS codeservice_claim_and_read(text, bigint, text[], bigint)")
    op.drop_table("scan_directory_version")
