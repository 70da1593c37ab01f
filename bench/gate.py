"""Benchmark: the gate loop's decisions per second from a pipe, against the library's in-process figure.

Run by hand: ``.venv/bin/python bench/gate.py [--rounds N] [--batch N]``.
In one run, interleaved round by round so that machine noise hits both alike:

  (c) OfflineVerifier.verify of fresh valid codes with an SQLite store, in
      this process: bench/verify.py's (c), the floor to compare with
  (g) ``python -m verifiers gate`` (SQLite store), a subprocess fed the same
      number of fresh codes through a pipe, one per line, every decision line
      read back; timed from the first code written to the last decision read,
      after a warm-up code (so the interpreter's start is not counted)

Prints decisions per second (median over rounds) and the ratio (g)/(c); the
target is at least 0.8.
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


def in_process(keys: KeySet, store: Path, tokens: list[str]) -> float:
    """Decisions per second of OfflineVerifier.verify with an SQLite store."""
    with OfflineVerifier(keys, issuer=ISSUER, venue_id="v", device_id="d", store=store) as verifier:
        verify = verifier.verify
        start = time.perf_counter()
        for token in tokens:
            if not verify(token, "transit", CONTEXT).ok:
                raise SystemExit("a valid code was rejected: the benchmark is broken")
        elapsed = time.perf_counter() - start
    return len(tokens) / elapsed


def through_the_gate(jwks: Path, store: Path, warm_up: str, tokens: list[str]) -> float:
    """Decisions per second of the gate loop, fed through a pipe."""
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

    start = time.perf_counter()
    writer = threading.Thread(target=feed)
    writer.start()
    read = 0
    for line in gate.stdout:
        if b'"accepted"' not in line:
            raise SystemExit(f"a valid code was rejected by the gate: {line[:200]!r}")
        read += 1
    elapsed = time.perf_counter() - start
    writer.join()
    if gate.wait() != 0 or read != len(tokens):
        raise SystemExit(f"the gate exited {gate.returncode} after {read} of {len(tokens)} decisions")
    return len(tokens) / elapsed


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

    library: list[float] = []
    gate: list[float] = []
    for number in range(args.rounds):
        now = int(time.time())
        library.append(in_process(keys, workdir / f"library-{number}.db", make_tokens(jwk, sign, args.batch, now)))
        warm_up, *tokens = make_tokens(jwk, sign, args.batch + 1, now)
        gate.append(through_the_gate(jwks, workdir / f"gate-{number}.db", warm_up, tokens))

    floor, piped = statistics.median(library), statistics.median(gate)
    print(f"{args.rounds} rounds x {args.batch} codes, interleaved; medians (range)")
    print(f"(c) OfflineVerifier.verify, SQLite store, in process  {floor:8.0f} /s  "
          f"({min(library):.0f}-{max(library):.0f})")
    print(f"(g) python -m verifiers gate, SQLite store, a pipe    {piped:8.0f} /s  "
          f"({min(gate):.0f}-{max(gate):.0f})")
    print(f"(g)/(c) = {piped / floor:.2f} (target: at least 0.80)")


if __name__ == "__main__":
    main()
