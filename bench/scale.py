"""Benchmark: does the service scale out? One gunicorn instance against two on one PostgreSQL.

Run by hand (it prints, asserts nothing, and stops by itself)::

    .venv/bin/python bench/scale.py [--duration 10] [--rounds 2] [--workers 2] [--connections 16]

Everything runs on 127.0.0.1: a fresh PostgreSQL schema (dropped at the end)
with its keys and a scanner, and two gunicorn instances of the service on it,
``--workers 2`` sync workers each, rate limiting off. The same load is put on

  (one) instance A alone: one ``wrk`` with all ``--connections``;
  (two) A and B at once: two ``wrk`` processes started together, each with
        half the connections, one per instance; their rates are added.

round by round (``--rounds``), so that machine noise hits both alike. Every
request is ``POST /api/v1/verify`` with a fresh code (a new ``jti`` and a new
resident), so each is a full ``accepted`` decision written to the shared
database; the run counts the decisions afterwards.

Printed: req/s, p50 and p99 for each, and the scaling ratio two/one. For two
instances the latencies are the worse of the two ``wrk`` processes'.

The servers, codes, load generator and ``wrk`` script are bench/scan.py's.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scan import (  # bench/ is not a package
    DEFAULT_PG_URL,
    MAX_TOKENS,
    WARMUP_SECONDS,
    Load,
    Server,
    Service,
    Wrk,
    combine,
    decisions,
    fmt_load,
    postgres_schema,
    prepare_service,
    write_bodies,
)

CAVEAT = (
    "On a machine whose few cores (2 here is typical) are shared by both instances, PostgreSQL and the\n"
    "load generator, the two/one ratio will be well under 2x: a second instance adds processes, not\n"
    "CPUs. It shows that instances on one database work together and do not serialise on it; real\n"
    "scale-out needs each instance on its own cores."
)


def concurrent(runs: list[tuple[Wrk, int, Path]], service: Service, seconds: float) -> Load:
    """Several wrk processes at once, one per (generator, port, bodies); rates added."""
    results: list[Load | BaseException] = [RuntimeError("did not run")] * len(runs)

    def one(index: int, generator: Wrk, port: int, bodies: Path) -> None:
        try:
            results[index] = generator.run(port, "/api/v1/verify", seconds, bodies, service.scanner_key)
        except BaseException as exc:  # re-raised below, in the main thread
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i, *run), daemon=True) for i, run in enumerate(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 90)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    loads: list[Load] = results  # type: ignore[assignment]
    # Each process ran for (nearly) the same time: the added rates are sum(requests) / mean(seconds).
    return Load(
        requests=sum(load.requests for load in loads),
        seconds=statistics.mean(load.seconds for load in loads),
        p50_ms=max(load.p50_ms for load in loads),
        p99_ms=max(load.p99_ms for load in loads),
        non_2xx=sum(load.non_2xx for load in loads),
        socket_errors=sum(load.socket_errors for load in loads),
        wrapped=sum(load.wrapped for load in loads),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per setup [10]")
    parser.add_argument("--rounds", type=int, default=2, help="alternate one and two instances this many times [2]")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers per instance [2]")
    parser.add_argument("--connections", type=int, default=16, help="connections in all, split across instances [16]")
    parser.add_argument("--pg-url", default=os.environ.get("CODESERVICE_BENCH_PG_URL", DEFAULT_PG_URL))
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 120:
        parser.error("--duration must be from 1 to 120 seconds")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be from 1 to 10")
    if args.connections < 2 or args.connections % 2:
        parser.error("--connections must be even, to split it across two instances")
    executable = shutil.which("wrk")
    if executable is None:
        raise SystemExit("bench/scale.py needs wrk (apt-get install -y wrk)")

    os.environ["CODESERVICE_RATE_LIMITS"] = "off"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    half = args.connections // 2
    per_round = max(1, round(args.duration / args.rounds))

    with tempfile.TemporaryDirectory(prefix="codeservice-scale-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        # wrk threads: 2 for the single process, 1 in each of the two, so both setups run 2 in all.
        single = Wrk(executable, 2, args.connections, workdir)
        pair = [Wrk(executable, 1, half, workdir), Wrk(executable, 1, half, workdir)]
        print(f"CPUs: {os.cpu_count()}; {args.workers} sync workers per instance; wrk, {args.connections} "
              f"connections in all; {args.rounds} rounds of {per_round} s per setup", flush=True)
        print(CAVEAT, flush=True)
        database_url = stack.enter_context(postgres_schema(args.pg_url))
        service = prepare_service("scale", database_url, workdir)
        servers = [Server(name, "codeservice:create_app()", service.env, workdir, workdir, args.workers)
                   for name in ("instance-a", "instance-b")]
        # Registered after the schema: the servers stop before it is dropped.
        stack.callback(lambda: [server.stop() for server in servers])
        for server in servers:
            server.start()
        a, b = servers

        warm = write_bodies(service, 2000, workdir / "warm-one.jsonl")
        warm_one = single.run(a.port, "/api/v1/verify", WARMUP_SECONDS, warm, service.scanner_key)
        warm_a = write_bodies(service, 1500, workdir / "warm-a.jsonl")
        warm_b = write_bodies(service, 1500, workdir / "warm-b.jsonl")
        warm_two = concurrent([(pair[0], a.port, warm_a), (pair[1], b.port, warm_b)], service, WARMUP_SECONDS)
        # Twice what the warm-up rates need, so that no request ever repeats a code.
        rate = max(warm_one.rps, warm_two.rps)
        count = min(MAX_TOKENS, max(3000, math.ceil(rate * per_round * 2)))
        print(f"warm-up: one {warm_one.rps:,.0f} req/s, two {warm_two.rps:,.0f} req/s; "
              f"{count:,} fresh codes per wrk process per round", flush=True)

        before = decisions(database_url)
        ones: list[Load] = []
        twos: list[Load] = []
        for index in range(args.rounds):
            bodies = write_bodies(service, count, workdir / f"one-{index}.jsonl")
            ones.append(single.run(a.port, "/api/v1/verify", per_round, bodies, service.scanner_key))
            bodies_a = write_bodies(service, count, workdir / f"two-a-{index}.jsonl")
            bodies_b = write_bodies(service, count, workdir / f"two-b-{index}.jsonl")
            twos.append(concurrent([(pair[0], a.port, bodies_a), (pair[1], b.port, bodies_b)], service, per_round))
            print(f"round {index + 1}: one instance {ones[-1].rps:,.0f} req/s, two instances {twos[-1].rps:,.0f} req/s",
                  flush=True)
        after = decisions(database_url)

    made = {code: after.get(code, 0) - before.get(code, 0) for code in after}
    made = {code: n for code, n in made.items() if n}
    one, two = combine(ones), combine(twos)
    print()
    print(f"{'setup':<18} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'requests':>9} {'non2xx':>6} {'errors':>6}")
    print(fmt_load("one instance", one))
    print(fmt_load("two instances", two))
    print("(p50 and p99: the median of the rounds' own; for two instances, the worse wrk process's)")
    print(f"decisions logged by the measured rounds: {made or 'none'}")
    if one.wrapped or two.wrapped or set(made) - {"accepted"}:
        print("NOTE: not every request was a fresh accepted code (codes ran out: raise MAX_TOKENS)")
    if one.rps:
        print(f"scaling two/one: {two.rps / one.rps:.2f}x  (ideal 2x; on {os.cpu_count()} cores shared with "
              "PostgreSQL and the load generator, expect well under 2x)")


if __name__ == "__main__":
    main()
