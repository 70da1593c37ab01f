"""Benchmark: a decision's SQL alone on PostgreSQL, against the durable floor's one INSERT, with pgbench.

Run by hand (it prints, asserts nothing, and drops what it made)::

    .venv/bin/python bench/decision_sql.py [--seconds 5] [--rounds 3] [--clients 2]

No Python and no HTTP on the measured path: pgbench (PostgreSQL's own load
generator, simple query protocol, ``--clients`` connections over 127.0.0.1)
sends the server what a request would send it, over a fresh schema made by
the service's own ``init_db``. The statements are the verify path's own
(``codeservice.scan_store``), their parameters written as SQL expressions,
so that each transaction has its own code, resident and state key:

  floor              ``bench/hello_app.py``'s durable floor: one autocommit
                     INSERT of a row into a table with one index
  usage              the usage record's INSERT alone, autocommit (its five
                     indexes and the roll-up's BRIN: migration 0012 counts
                     records into ``usage_hourly`` after their commit)
  claim              the first round trip, then COMMIT: ``BEGIN;
                     codeservice_claim_and_read(jti, [key])``
  decision           a clinic check-in as the verify path sends it, two round
                     trips: ``BEGIN; claim_and_read``, then the state write
                     as a CTE of the usage record's INSERT, ``COMMIT``
  decision, 1 trip   the same statements sent in one round trip (the state
                     write here does not wait for the read): what a second
                     round trip costs

Rounds run every variant in turn, so that the machine's noise hits them
alike; printed: transactions per second per round, each variant's ratio
to the floor of the same round (range over the rounds), and the server's CPU
per transaction (every PostgreSQL process's, read from /proc). The verify endpoint
can be no nearer its durable floor than its SQL alone is to the floor's.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from hello_app import TABLE  # bench/, run as a script
from scan import DEFAULT_PG_URL, postgres_cpu, postgres_schema, prepare_service
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from codeservice.scan_store import _PSYCOPG_STATEMENTS, _psycopg_record

# Each transaction's own numbers: pgbench draws them, the SQL below builds the values from them.
DRAW = "\\set n random(1, 1000000000000)\n"
KEY = "'checkin:2026-12-05:cardiology:' || :n"
CLAIM = {
    "jti": "'j' || :n || '-1767225600'",
    "expires_at": "2000000000",
    "keys": f"json_build_array({KEY})::text",
    "now": "extract(epoch FROM now())::bigint",
}
USAGE = {
    "id": "gen_random_uuid()::text",
    "scene": "'clinic'",
    "venue_id": "'bench-clinic'",
    "device_id": "'desk-1'",
    "sub": "'s' || :n",
    "jti": "'j' || :n || '-1767225600'",
    "decided_at": "now()",
    "ok": "true",
    "code": "'accepted'",
    "detail": "'{\"department\": \"cardiology\", \"appointment_id\": null}'",
    "scanner_id": "NULL",  # the bench scanner's id, set by scripts()
    "online": "true",
    "received_at": "now()",
    "form": "'device'",
    "key0": KEY,
    "value0": "('\"j' || :n || '-1767225600\"')::json",
    "expires_at0": "2000000000",
}


def scripts(scanner_id: int) -> dict[str, str]:
    """Each variant's pgbench script. ``\\;`` joins statements into one round trip."""
    usage = dict(USAGE, scanner_id=str(scanner_id))
    claim = _PSYCOPG_STATEMENTS["claim_and_read"] % CLAIM
    record = _psycopg_record((False,)) % usage
    return {
        "floor": (
            "INSERT INTO hello_durable VALUES (gen_random_uuid()::text, '{\"sub\": \"hello\", \"exp\": 2000000000}');\n"
        ),
        "usage": DRAW + _PSYCOPG_STATEMENTS["usage"] % usage + ";\n",
        "claim": DRAW + f"BEGIN \\; {claim};\nCOMMIT;\n",
        "decision": DRAW + f"BEGIN \\; {claim};\n{record} \\; COMMIT;\n",
        "decision, 1 trip": DRAW + f"BEGIN \\; {claim} \\; {record} \\; COMMIT;\n",
    }


def pgbench(url: str, schema: str, script: Path, seconds: float, clients: int) -> tuple[float, float]:
    """Transactions per second, pgbench's own figure (without connection time), and the server's CPU per
    transaction in µs (every PostgreSQL process's, over the run, connections and all: an upper bound)."""
    address = make_url(url)
    cpu_before = postgres_cpu()
    env = dict(os.environ, PGOPTIONS=f"-c search_path={schema}")
    result = subprocess.run(
        [
            "pgbench", "-n", "-M", "simple", "-c", str(clients), "-j", str(clients), "-T", str(seconds),
            "-h", address.host or "127.0.0.1", "-p", str(address.port or 5432), "-U", address.username or "postgres",
            "-f", str(script), address.database or "test",
        ],
        env=env, capture_output=True, text=True,
    )
    found = re.search(r"^tps = ([0-9.]+)", result.stdout, re.MULTILINE)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"pgbench printed no tps:\n{result.stdout}{result.stderr}")
    time.sleep(0.5)  # the run's backends end and the postmaster reaps them, their CPU with them
    transactions = re.search(r"^number of transactions actually processed: ([0-9]+)", result.stdout, re.MULTILINE)
    cpu_us = (postgres_cpu() - cpu_before) * 1e6 / int(transactions.group(1)) if transactions else math.nan
    return float(found.group(1)), cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="seconds per variant per round [5]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2, help="pgbench connections, as gunicorn's workers [2]")
    parser.add_argument("--pg-url", default=os.environ.get("CODESERVICE_BENCH_PG_URL", DEFAULT_PG_URL))
    args = parser.parse_args()
    if shutil.which("pgbench") is None:
        raise SystemExit("pgbench is not installed (Debian: postgresql-contrib or postgresql-client)")

    with tempfile.TemporaryDirectory() as workdir, postgres_schema(args.pg_url) as database_url:
        service = prepare_service("postgres", database_url, Path(workdir))
        schema = make_url(database_url).query["options"].split("=", 1)[1]
        engine = create_engine(database_url)
        with engine.begin() as connection:
            connection.execute(text(TABLE))
            synchronous_commit = connection.execute(text("SHOW synchronous_commit")).scalar()
        variants = {}
        for name, body in scripts(service.scanner_id).items():
            path = Path(workdir) / f"{len(variants)}.sql"
            path.write_text(body)
            variants[name] = path

        tps: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, path in variants.items():
                rate, cpu_us = pgbench(args.pg_url, schema, path, args.seconds, args.clients)
                tps[name].append(rate)
                cpu[name].append(cpu_us)
        engine.dispose()

    load = os.getloadavg()[0]
    print(
        f"{args.rounds} rounds x {args.seconds} s, {args.clients} clients, synchronous_commit={synchronous_commit},"
        f" load {load:.1f} at the end"
    )
    print(f"{'':<20}{'tps per round':>32}   ratio to the floor (range)   server CPU per transaction (range)")
    for name, figures in tps.items():
        ratios = [value / floor for value, floor in zip(figures, tps["floor"], strict=True)]
        rounds = " ".join(f"{value:>9,.0f}" for value in figures)
        print(
            f"{name:<20}{rounds:>32}   {min(ratios):.2f}-{max(ratios):.2f}x"
            f"{'':<16}{min(cpu[name]):.0f}-{max(cpu[name]):.0f} µs"
        )


if __name__ == "__main__":
    main()
