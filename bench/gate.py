"""Benchmark: the gate loop's decisions per second from a pipe, against the library's in-process figure.

Run by hand: ``.venv/bin/python bench/gate.py [--rounds N] [--batch N]``.
In one run, interleaved round by round so that machine noise hits both alike:

  (c) OfflineVerifier.verify of fresh valid codes with an SQLite store, in
      this process: bench/verify.py's (c), the floor to compare with
  (g) ``python -m verifiers gate`` (SQLite store), a subprocess fed the same
      number of fresh codes through a pipe, one per line, every decision line
      read back; timed from the first code written to the last decision read,
      after a warm-up code (so the interpreter's start is not counted)

Prints decisions per second (median over rounds), the ratio of the medians
(g)/(c) and the median (range) of each round's own ratio; the target is at
least 0.8. Twice: by the clock, then per CPU second (the gate's own, from
/proc), which a machine shared with other work disturbs far less: the two
processes of (g) wait for each other and for the scheduler, (c) does not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from verify import CONTEXT, ISSUER, make_signer, make_tokens

from verifiers import KeySet, OfflineVerifier

PROJECT = Path(__file__).resolve().parent.parent


def process_cpu(pid: int) -> float:
    """A process's CPU seconds so far (user and system), from /proc (clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(keys: KeySet, store: Path, tokens: list[str]) -> tuple[float, float]:
    """Decisions per second of OfflineVerifier.verify with an SQLite store: by the clock, and per CPU second."""
    with OfflineVerifier(keys, issuer=ISSUER, venue_id="v", device_id="d", store=store) as verifier:
        verify = verifier.verify
        start, cpu = time.perf_counter(), time.process_time()
        for token in tokens:
            if not verify(token, "transit", CONTEXT).ok:
                raise SystemExit("a valid code was rejected: the benchmark is broken")
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(tokens) / elapsed, len(tokens) / cpu


def through_the_gate(jwks: Path, store: Path, warm_up: str, tokens: list[str]) -> tuple[float, float]:
    """Decisions per second of the gate loop, fed through a pipe: by the clock, and per CPU second of the gate."""
    gate = subprocess.Popen(
        [
            sys.executable, "-m", "verifiers", "gate", "--scene", "transit", "--context", json.dumps(CONTEXT),
            "--store", str(store), "--jwks", str(jwks), "--venue", "v", "--device", "d",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    assert gate.stdin is not None and gate.stdout is not None
    gate.stdin.write(warm_up.encode("ascii") + b"\n")
    gate.stdin.flush()
    if b'"accepted"' not in gate.stdout.readline():
        raise SystemExit("the warm-up code was rejected: the benchmark is broken")
    payload = "".join(token + "\n" for token in tokens).encode("ascii")

    def feed() -> None:
        assert gate.stdin is not None
        gate.stdin.write(payload)
        gate.stdin.close()

    start, cpu = time.perf_counter(), process_cpu(gate.pid)
    writer = threading.Thread(target=feed)
    writer.start()
    # Read in large chunks and count in C: this process must not compete with the gate for the CPU.
    fd, read, accepted, tail = gate.stdout.fileno(), 0, 0, b""
    elapsed = 0.0
    while chunk := os.read(fd, 1 << 20):
        read += chunk.count(b"\n")
        accepted += (tail + chunk).count(b'"code": "accepted"') - tail.count(b'"code": "accepted"')
        tail = chunk[-32:]
        if read == len(tokens) and not elapsed:
            # The last decision is in: stop the clocks here, as (c) does, before the gate's exit.
            elapsed, cpu = time.perf_counter() - start, process_cpu(gate.pid) - cpu
    writer.join()
    if gate.wait() != 0 or read != len(tokens) or accepted != len(tokens):
        raise SystemExit(f"the gate exited {gate.returncode} after {read} decisions, {accepted} accepted, "
                         f"of {len(tokens)} valid codes")
    return len(tokens) / elapsed, len(tokens) / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()

    jwk, sign = make_signer("EdDSA")
    keys = KeySet.from_jwks({"keys": [jwk]})
    workdir = Path(tempfile.mkdtemp(prefix="bench-gate-"))
    jwks = workdir / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")

    library: list[tuple[float, float]] = []
    gate: list[tuple[float, float]] = []
    for number in range(args.rounds):
        now = int(time.time())
        library.append(in_process(keys, workdir / f"library-{number}.db", make_tokens(jwk, sign, args.batch, now)))
        warm_up, *tokens = make_tokens(jwk, sign, args.batch + 1, now)
        gate.append(through_the_gate(jwks, workdir / f"gate-{number}.db", warm_up, tokens))

    print(f"{args.rounds} rounds x {args.batch} codes, interleaved; medians (range)")
    for index, unit in ((0, "/s"), (1, "/CPU s")):
        floor, piped = statistics.median(c[index] for c in library), statistics.median(g[index] for g in gate)
        paired = [g[index] / c[index] for g, c in zip(gate, library, strict=True)]  # noise hits a round alike
        print(f"(c) OfflineVerifier.verify, SQLite store, in process  {floor:8.0f} {unit:6s} "
              f"({min(c[index] for c in library):.0f}-{max(c[index] for c in library):.0f})")
        print(f"(g) python -m verifiers gate, SQLite store, a pipe    {piped:8.0f} {unit:6s} "
              f"({min(g[index] for g in gate):.0f}-{max(g[index] for g in gate):.0f})")
        print(f"    (g)/(c) = {piped / floor:.2f}; per round {statistics.median(paired):.2f} "
              f"({min(paired):.2f}-{max(paired):.2f}) (target: at least 0.80)")


if __name__ == "__main__":
    main()
