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

# 0009's function with its read replaced: the claim and the locks are as they were.
_AGGREGATE_READ = """
    SELECT coalesce(array_agg(s.value ORDER BY k.n), '{}') INTO state_values
    FROM unnest(state_keys) WITH ORDINALITY AS k(key, n)
    LEFT JOIN scene_state s ON s.key = k.key AND s.expires_at >= now_ts;
"""
_KEY_BY_KEY_READ = """
    state_values := '{}';
    FOREACH state_key IN ARRAY coalesce(state_keys, '{}') LOOP
        state_values := state_values
            || (SELECT s.value FROM scene_state s WHERE s.key = state_key AND s.expires_at >= now_ts);
    END LOOP;
"""
_DECLARE = "    lock_id bigint;\n"
assert _AGGREGATE_READ in _0009.CLAIM_AND_READ and _DECLARE in _0009.CLAIM_AND_READ
CLAIM_AND_READ = _0009.CLAIM_AND_READ.replace(_AGGREGATE_READ, _KEY_BY_KEY_READ).replace(
    _DECLARE, _DECLARE + "    state_key text;\n"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CLAIM_AND_READ)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_0009.CLAIM_AND_READ)
