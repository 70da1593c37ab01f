"""claim_and_read_by_key: PostgreSQL's claim-and-read (0009) reads its state keys one by one.

The first of a decision's two round trips cost the server more than its
work: 0009's function read the keys' values with one aggregate query
(``unnest ... WITH ORDINALITY`` joined to ``scene_state``, ``array_agg``).
Its generic plan is costed for ten keys (an ``unnest`` of a parameter), ten
times its custom plan for one (84 against 8.5 here), so PL/pgSQL planned
the query again at every call. Here each key is one primary-key lookup in
a loop, whose generic plan is kept. Same arguments, same answer for every
list of keys (none, missing, expired, repeated, JSON null).

Measured: a clinic check-in's SQL alone with pgbench (``bench/decision_sql.py``),
the claim round trip 17-21% more transactions per second, the whole
decision 7-18%; ``POST /api/v1/verify`` under ``wrk`` (``bench/scan.py``,
three runs each, the version before and this one in turn) 637-721 to
941-987 decisions per second, 0.35-0.38 to 0.51-0.53 of the durable floor,
p50 22-27 ms to 15-17 ms.

The locks are taken as before, each key's in one order, before any read;
PL/pgSQL gives each read a fresh snapshot, so each sees what the keys'
previous holders committed. SQLite has no such function (its decision runs
under the database's one write lock): nothing to do there. Downgrade
restores 0009's function.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_0009 = importlib.import_module("codeservice.migrations.versions.0009_scan_directory_version")

CLAIM_AND_READ = """
CREATE OR REPLACE FUNCTION codeservice_claim_and_read(
    claim_jti text, claim_expires_at bigint, state_keys text[], now_ts bigint,
    OUT claimed boolean, OUT state_values json[]
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    lock_id bigint;
    state_key text;
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
    state_values := '{}';
    FOREACH state_key IN ARRAY coalesce(state_keys, '{}') LOOP
        state_values := state_values
            || (SELECT s.value FROM scene_state s WHERE s.key = state_key AND s.expires_at >= now_ts);
    END LOOP;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CLAIM_AND_READ)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_0009.CLAIM_AND_READ)
