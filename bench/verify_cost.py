"""Benchmark: what one decision of POST /api/v1/verify costs in process, and its PostgreSQL round trips.

Run by hand (it prints, asserts nothing)::

    .venv/bin/python bench/verify_cost.py [--decisions 2000] [--no-postgres]

In one process, with Flask's test client (no server, no network, no load
generator), on a temporary SQLite file and on a fresh PostgreSQL schema:

- **CPU per decision**: ``time.process_time()`` around ``--decisions``
  accepted decisions (fresh codes, scene ``clinic``), after a warm-up, divided
  by their number; the same around as many ``GET /healthz`` as the floor of
  the framework and its test client. The database server's own CPU is not in
  it (PostgreSQL's is another process; SQLite's is in it).
- **Round trips per decision on PostgreSQL**: each connection the app opens
  is traced by libpq (psycopg's ``pgconn.trace``); a round trip is one
  ``ReadyForQuery`` the server sends, which ends its answer to each client
  ``Query`` (simple protocol) or ``Sync`` (extended protocol). Counted per kind of
  decision, the pool's pings included: an accepted clinic code (one state
  key), an accepted venue code (two keys), a replay, a malformed code
  (refused before the database), a scene's refusal (checked in already).

The figures are the process's, on a shared machine: run it three times and
report the range.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan import DEFAULT_PG_URL, ISSUER, postgres_schema, prepare_service

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import LibpqTrace  # the round-trip tests' reader of the same trace

from codeservice import create_app, db, scanners
from codeservice.context import scene_registry
from codeservice.issuance import issue_code, new_code_id
from codeservice.keystore import KeyStore

VERIFY = "/api/v1/verify"


def codes(keys_dir: Path, count: int, scopes: tuple[str, ...] = ("clinic", "venue")) -> list[str]:
    signer = KeyStore(keys_dir).signer()
    now = int(time.time())
    return [
        issue_code(signer, sub=new_code_id(), scopes=scopes, category=None, now=now, ttl=300, issuer=ISSUER)
        for _ in range(count)
    ]


def present(client: Any, key: str, token: str, scene: str = "clinic", context: Any = None) -> str:
    body = {"token": token, "scene": scene, "context": {"department": "cardiology"} if context is None else context}
    response = client.post(VERIFY, json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.get_json()["code"])


def measure(label: str, database_url: str, workdir: Path, decisions: int, tracer: LibpqTrace | None) -> None:
    service = prepare_service(label, database_url, workdir)
    app = create_app({"DATABASE_URL": database_url, "KEYS_DIR": str(service.keys_dir), "ENV": "development",
                      "RATE_LIMITS": "off"})
    if tracer is not None:
        tracer.attach(db.engine(app))
    with app.app_context():
        _, venue_key = scanners.add_scanner(
            db.session(), venue_id="bench-venue", device_id="door-1", scenes=["venue", "clinic"],
            installed=scene_registry().names(), now=datetime.now(UTC),
        )
        db.session().close()
    client = app.test_client()
    key = service.scanner_key
    warm = codes(service.keys_dir, 200)
    for token in warm:
        present(client, key, token)
    tokens = codes(service.keys_dir, decisions)
    started = time.process_time()
    outcomes = Counter(present(client, key, token) for token in tokens)
    per_decision = (time.process_time() - started) / decisions
    started = time.process_time()
    for _ in range(decisions):
        client.get("/healthz")
    per_healthz = (time.process_time() - started) / decisions
    print(f"{label}: CPU per accepted decision {per_decision * 1e6:,.0f} µs in process "
          f"(GET /healthz {per_healthz * 1e6:,.0f} µs; difference {(per_decision - per_healthz) * 1e6:,.0f} µs) "
          f"over {decisions:,} decisions {dict(outcomes)}", flush=True)
    if tracer is None:
        return
    token, venue_token, checked = codes(service.keys_dir, 3)
    present(client, venue_key, checked)  # checked in today: the next of this resident is refused
    again = codes_for_same(service.keys_dir, checked)
    tracer.since_last()
    kinds = [
        ("accepted (clinic: one state key)", lambda: present(client, key, token)),
        ("accepted (venue: two state keys)", lambda: present(client, venue_key, venue_token, "venue", {})),
        ("replayed", lambda: present(client, key, token)),
        ("malformed (refused before the database)", lambda: present(client, key, "not.a.code")),
        ("already_checked_in (the scene's refusal)", lambda: present(client, venue_key, again)),
    ]
    for name, decide in kinds:
        code = decide()
        trips, sent = tracer.since_last()
        print(f"  {name}: {code}, {trips} round trips: {[text[:60] for text in sent]}", flush=True)


def codes_for_same(keys_dir: Path, token: str) -> str:
    """Another code of the resident ``token`` belongs to (its ``sub``)."""
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    signer = KeyStore(keys_dir).signer()
    return issue_code(signer, sub=claims["sub"], scopes=("clinic", "venue"), category=None, now=int(time.time()),
                      ttl=300, issuer=ISSUER)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--pg-url", default=os.environ.get("CODESERVICE_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    os.environ["CODESERVICE_RATE_LIMITS"] = "off"
    with tempfile.TemporaryDirectory(prefix="codeservice-cost-") as tmp:
        workdir = Path(tmp)
        (workdir / "sqlite").mkdir()
        measure("sqlite", f"sqlite:///{workdir / 'sqlite' / 'codeservice.db'}", workdir / "sqlite", args.decisions,
                None)
        if not args.no_postgres:
            (workdir / "postgres").mkdir()
            tracer = LibpqTrace(workdir / "libpq.trace")
            try:
                with postgres_schema(args.pg_url) as url:
                    measure("postgres", url, workdir / "postgres", args.decisions, tracer)
            finally:
                tracer.close()


if __name__ == "__main__":
    main()
