"""Contract section 6: ``python -m verifiers gate``, the loop for hardware readers.

The real command in a subprocess, fed codes of every form (JWS, device,
paper) one per line: one decision as JSON per line out, in order; every
decision in the store's outbox, also after SIGTERM; hooks run per decision,
never through a shell; usage errors exit 2 with one line. The line splitter
is also tested in-process, on chunks cut anywhere.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import TestKey
from offline_minting import HINT, a_device_code, a_paper_code

from verifiers import KeySet, OfflineVerifier
from verifiers.gate import MAX_LINE_BYTES, LineSplitter

VENUE = "museum-1"
CONTEXT = json.dumps({"venue_id": VENUE})
DECISION_KEYS = {"ok", "code", "scene", "form", "sub", "jti", "exp", "check_id", "detail", "message"}


@pytest.fixture
def jwks_file(tmp_path: Path, jwks: dict[str, Any]) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks), encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "gate.db"


@pytest.fixture
def gate_args(jwks_file: Path, store: Path) -> Callable[..., list[str]]:
    def build(*extra: str, jwks: bool = True) -> list[str]:
        args = ["gate", "--scene", "venue", "--context", CONTEXT, "--store", str(store)]
        if jwks:
            args += ["--jwks", str(jwks_file)]
        return [*args, *extra]

    return build


class Codes:
    """Codes valid now (the command reads the real clock), each of a resident of its own."""

    def __init__(self, make_token: Callable[..., str], issuer_key: TestKey) -> None:
        self._make_token, self._key, self._count = make_token, issuer_key, 0

    def _sub(self) -> str:
        self._count += 1
        return f"resident{self._count:08d}"

    def jws(self, *, ago: int = 0, **overrides: Any) -> str:
        return self._make_token(now=int(time.time()) - ago, sub=self._sub(), **overrides)

    def device(self) -> str:
        now = int(time.time())
        return a_device_code(self._key, t=now - 5, now=now, labels={2: self._sub()})

    def paper(self) -> str:
        return a_paper_code(self._key, now=int(time.time()), labels={2: self._sub()})


@pytest.fixture
def codes(make_token: Callable[..., str], ed25519_key: TestKey) -> Codes:
    return Codes(make_token, ed25519_key)


def run_gate(
    args: list[str], stdin: bytes = b"", *, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "verifiers", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def lines_of(*codes: str) -> bytes:
    return "".join(f"{code}\n" for code in codes).encode("utf-8")


def decisions_of(stdout: bytes) -> list[dict[str, Any]]:
    text = stdout.decode("utf-8")
    assert text == "" or text.endswith("\n"), text[-200:]
    decisions = [json.loads(line) for line in text.splitlines()]
    for decision in decisions:
        assert set(decision) == DECISION_KEYS, decision
    return decisions


def codes_of(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    assert result.returncode == 0, result.stderr.decode("utf-8", errors="replace")
    assert b"Traceback" not in result.stderr
    return [decision["code"] for decision in decisions_of(result.stdout)]


def outbox(store: Path) -> list[dict[str, Any]]:
    """The records a gate left in its store, read back as the next sync would."""
    with OfflineVerifier(None, store=store) as verifier:
        return verifier.pending_records()


@pytest.fixture
def seeded_store(store: Path, key_set: KeySet) -> Path:
    """A store that holds a key set, as after a sync."""
    with OfflineVerifier(key_set, store=store) as verifier:
        verifier.set_keys(key_set, fetched_at=time.time())
    return store


class Running:
    """A gate running in the background: write lines, read decisions one at a time."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "verifiers", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.rest = b""
        self._pending = b""

    def send(self, *codes: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(lines_of(*codes))
        self.process.stdin.flush()

    def decision(self, timeout: float = 30) -> dict[str, Any]:
        """The next decision line, read from the pipe itself (a buffered reader would hide lines from select)."""
        assert self.process.stdout is not None
        fd, deadline = self.process.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "no decision in time"
            data = os.read(fd, 65536)
            assert data, "the gate closed its output"
            self._pending += data
        line, _, self._pending = self._pending.partition(b"\n")
        return json.loads(line)

    def stop(self, timeout: float = 30) -> tuple[int, bytes]:
        """SIGTERM; the exit status and standard error (the decisions not yet read are in ``rest``)."""
        self.process.send_signal(signal.SIGTERM)
        rest, stderr = self.process.communicate(timeout=timeout)
        self.rest = self._pending + rest
        return self.process.returncode, stderr


@pytest.fixture
def running() -> Iterator[Callable[[list[str]], Running]]:
    started: list[Running] = []

    def start(args: list[str]) -> Running:
        started.append(Running(args))
        return started[-1]

    yield start
    for gate in started:
        if gate.process.poll() is None:
            gate.process.kill()
            gate.process.communicate()


# -- lines in, decisions out ---------------------------------------------------


def test_every_line_gets_its_decision_in_order(gate_args, codes, store):
    jws = codes.jws()
    device = codes.device()
    sent = [
        (jws, "accepted"),
        (device, "accepted"),
        (codes.paper(), "attendant_required"),
        ("garbage", "malformed"),
        (jws, "replayed"),
        (device, "replayed"),
        (codes.jws(ago=3600), "expired"),
        (codes.jws(scp=["clinic"]), "scene_not_allowed"),
        ("RSD1:" + "A" * 30, "malformed"),
    ]
    result = run_gate(gate_args(), lines_of(*(code for code, _ in sent)))
    assert codes_of(result) == [expected for _, expected in sent]
    decisions = decisions_of(result.stdout)
    assert [d["form"] for d in decisions[:3]] == ["online", "device", "paper"]
    assert decisions[0]["detail"]["venue_id"] == VENUE
    assert [r["code"] for r in outbox(store)] == [expected for _, expected in sent]


def test_a_thousand_mixed_codes_give_a_thousand_decisions_in_order(gate_args, codes, store):
    sent: list[tuple[str, str]] = []
    for i in range(250):
        jws = codes.jws()
        sent += [(jws, "accepted"), (codes.device(), "accepted")]
        sent += [(f"broken-{i}", "malformed"), (jws, "replayed")]
    result = run_gate(gate_args(), lines_of(*(code for code, _ in sent)))
    assert codes_of(result) == [expected for _, expected in sent]
    assert len(outbox(store)) == 1000


def test_a_paper_code_needs_attended(gate_args, codes):
    paper = codes.paper()
    assert codes_of(run_gate(gate_args(), lines_of(paper))) == ["attendant_required"]
    staffed = run_gate(gate_args("--attended"), lines_of(paper))
    assert codes_of(staffed) == ["accepted"]
    decision = decisions_of(staffed.stdout)[0]
    assert (decision["form"], decision["check_id"]) == ("paper", HINT)


def test_blank_lines_are_skipped_and_crlf_stripped(gate_args, codes):
    stdin = b"\n\n" + codes.jws().encode() + b"\r\n   \n\r\n" + codes.device().encode() + b"\n\n"
    assert codes_of(run_gate(gate_args(), stdin)) == ["accepted", "accepted"]


def test_the_last_line_needs_no_newline(gate_args, codes):
    assert codes_of(run_gate(gate_args(), codes.jws().encode())) == ["accepted"]


@pytest.mark.parametrize("size", [MAX_LINE_BYTES - 100, MAX_LINE_BYTES + 1, 100_000, 8 * 1024 * 1024])
def test_an_over_long_line_is_malformed_and_the_next_one_decided(gate_args, codes, size):
    stdin = (codes.jws() + "A" * size + "\n" + codes.jws() + "\n").encode()
    assert codes_of(run_gate(gate_args(), stdin)) == ["malformed", "accepted"]


def test_an_endless_last_line_is_one_malformed_decision(gate_args):
    assert codes_of(run_gate(gate_args(), b"B" * (4 * 1024 * 1024))) == ["malformed"]


def test_garbage_bytes_are_malformed(gate_args, codes):
    stdin = b"\xff\xfe\x80.\xc3(.\xed\xa0\x80\n\x00\x01\x02\n" + codes.jws().encode() + b"\n"
    assert codes_of(run_gate(gate_args(), stdin)) == ["malformed", "malformed", "accepted"]


def test_an_unknown_scene_is_a_decision_per_line_as_check_gives(jwks_file, store, codes):
    args = ["gate", "--scene", "ferry", "--store", str(store), "--jwks", str(jwks_file)]
    assert codes_of(run_gate(args, lines_of(codes.jws(), "x"))) == ["unknown_scene", "unknown_scene"]


# -- the store: durable, and enough on its own ---------------------------------


def test_a_code_accepted_before_a_restart_is_replayed_after(gate_args, codes, store):
    jws, device = codes.jws(), codes.device()
    assert codes_of(run_gate(gate_args(), lines_of(jws, device))) == ["accepted", "accepted"]
    assert codes_of(run_gate(gate_args(), lines_of(jws, device))) == ["replayed", "replayed"]
    assert [r["code"] for r in outbox(store)] == ["accepted", "accepted", "replayed", "replayed"]


def test_no_jwks_needed_when_the_store_holds_keys(gate_args, seeded_store, codes):
    assert codes_of(run_gate(gate_args(jwks=False), lines_of(codes.jws()))) == ["accepted"]


def test_a_gate_restarted_without_jwks_goes_on_with_the_keys_it_was_given(gate_args, codes):
    jws = codes.jws()
    assert codes_of(run_gate(gate_args(), lines_of(jws))) == ["accepted"]
    assert codes_of(run_gate(gate_args(jwks=False), lines_of(jws, codes.device()))) == ["replayed", "accepted"]


def test_venue_and_device_name_the_records(jwks_file, store, codes):
    args = ["gate", "--scene", "venue", "--store", str(store), "--jwks", str(jwks_file)]
    assert codes_of(run_gate([*args, "--venue", VENUE, "--device", "door-2"], lines_of(codes.jws()))) == ["accepted"]
    (record,) = outbox(store)
    assert (record["venue_id"], record["device_id"], record["ok"]) == (VENUE, "door-2", True)


def test_sigterm_mid_stream_exits_0_with_every_decision_in_the_outbox(gate_args, codes, store, running):
    gate = running(gate_args())
    made = []
    for _ in range(5):
        gate.send(codes.jws(), "garbage")
        made += [gate.decision()["code"], gate.decision()["code"]]
    assert made == ["accepted", "malformed"] * 5
    returncode, stderr = gate.stop()  # the reader is still connected: the gate waits on its next line
    assert returncode == 0, stderr
    assert b"Traceback" not in stderr
    assert [r["code"] for r in outbox(store)] == made


def test_sigterm_during_a_burst_loses_no_decision_made(gate_args, codes, store, running):
    gate = running(gate_args())
    burst = [codes.jws() for _ in range(300)]
    gate.send(*burst)
    gate.decision()
    returncode, stderr = gate.stop()
    assert returncode == 0, stderr
    printed = 1 + len(decisions_of(gate.rest))
    assert 1 <= printed <= 300
    assert len(outbox(store)) == printed


def test_sigusr1_tells_how_old_the_keys_are(gate_args, seeded_store, codes, running):
    gate = running(gate_args(jwks=False))
    gate.send(codes.jws())
    assert gate.decision()["code"] == "accepted"
    gate.process.send_signal(signal.SIGUSR1)
    gate.send(codes.jws())
    assert gate.decision()["code"] == "accepted"
    returncode, stderr = gate.stop()
    assert returncode == 0
    text = stderr.decode()
    assert text.count("python -m verifiers gate: keys ") == 2, text  # at start and on SIGUSR1
    assert " s old" in text


# -- hooks ---------------------------------------------------------------------

MARKER = (
    "import os, pathlib, sys, uuid; "
    "pathlib.Path(sys.argv[1], uuid.uuid4().hex).write_text("
    "os.environ['CODESERVICE_DECISION'] + '\\n' + sys.stdin.read(), encoding='utf-8')"
)


def marker_hook(directory: Path) -> str:
    directory.mkdir()
    return shlex.join([sys.executable, "-c", MARKER, str(directory)])


def markers(directory: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    found = []
    for path in directory.iterdir():
        from_env, from_stdin = path.read_text(encoding="utf-8").split("\n")
        found.append((json.loads(from_env), json.loads(from_stdin)))
    return found


def test_each_decision_runs_its_hook(gate_args, codes, tmp_path):
    accepted, rejected = tmp_path / "accepted", tmp_path / "rejected"
    args = gate_args("--on-accept", marker_hook(accepted), "--on-reject", marker_hook(rejected))
    jws = codes.jws()
    result = run_gate(args, lines_of(jws, codes.device(), jws, "garbage", codes.jws()))
    assert codes_of(result) == ["accepted", "accepted", "replayed", "malformed", "accepted"]
    assert len(markers(accepted)) == 3
    assert sorted(env["code"] for env, _ in markers(rejected)) == ["malformed", "replayed"]
    for env, stdin in markers(accepted) + markers(rejected):
        assert env == stdin


def test_a_failing_hook_does_not_stop_the_loop(gate_args, codes):
    args = gate_args(
        "--on-accept", shlex.join([sys.executable, "-c", "raise SystemExit(3)"]),
        "--on-reject", "/nonexistent/relay --open",
    )
    result = run_gate(args, lines_of(codes.jws(), "garbage", codes.jws()))
    assert codes_of(result) == ["accepted", "malformed", "accepted"]
    stderr = result.stderr.decode()
    assert stderr.count("exited with status 3") == 2
    assert "'/nonexistent/relay' could not run" in stderr


def test_a_hook_s_output_never_mixes_with_the_decisions(gate_args, codes):
    args = gate_args("--on-accept", shlex.join([sys.executable, "-c", "print('RELAY OPEN')"]))
    result = run_gate(args, lines_of(codes.jws(), codes.jws()))
    assert codes_of(result) == ["accepted", "accepted"]
    assert result.stderr.count(b"RELAY OPEN") == 2


def test_a_slow_hook_does_not_hold_up_the_next_decision(gate_args, codes, running):
    slow = shlex.join([sys.executable, "-c", "import time; time.sleep(30)"])
    gate = running(gate_args("--on-accept", slow, "--hook-timeout", "1"))
    gate.send(codes.jws())
    assert gate.decision()["code"] == "accepted"
    started = time.monotonic()
    gate.send(codes.jws(), codes.jws())
    assert [gate.decision()["code"], gate.decision()["code"]] == ["accepted", "accepted"]
    assert time.monotonic() - started < 1.5
    returncode, stderr = gate.stop(timeout=60)
    assert returncode == 0
    assert b"killed after 1 s" in stderr


def test_a_crafted_code_cannot_make_a_hook_run_a_shell(gate_args, tmp_path):
    hooked = tmp_path / "hooked"
    args = gate_args("--on-reject", marker_hook(hooked))
    crafted = ["$(touch pwned)", "`touch pwned`", "; touch pwned", "| touch pwned", "' && touch pwned '"]
    result = run_gate(args, lines_of(*crafted), cwd=tmp_path)
    assert codes_of(result) == ["malformed"] * len(crafted)
    assert len(markers(hooked)) == len(crafted)
    assert not (tmp_path / "pwned").exists()


# -- --input: a serial port, a FIFO -------------------------------------------


def test_input_from_a_fifo_like_a_serial_port(gate_args, codes, tmp_path, store):
    fifo = tmp_path / "ttyACM0"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [sys.executable, "-m", "verifiers", *gate_args("--input", str(fifo))],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        jws = codes.jws()
        with open(fifo, "wb", buffering=0) as reader:  # blocks until the gate opens it
            for chunk in (jws[:10].encode(), jws[10:].encode() + b"\r\n", b"\r\n", jws.encode() + b"\r\n"):
                reader.write(chunk)
                time.sleep(0.05)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert [d["code"] for d in decisions_of(stdout)] == ["accepted", "replayed"]
    assert len(outbox(store)) == 2


# -- sync ------------------------------------------------------------------------


def test_a_failing_sync_never_stops_the_loop(gate_args, codes, tmp_path):
    key_file = tmp_path / "scanner.key"
    key_file.write_text("sk_test_not_a_real_key\n", encoding="utf-8")
    args = gate_args("--sync", "http://127.0.0.1:9", "--key-file", str(key_file), "--sync-every", "0.2")
    result = run_gate(args, lines_of(codes.jws(), "garbage", codes.jws()))
    assert codes_of(result) == ["accepted", "malformed", "accepted"]
    assert "python -m verifiers gate: sync: " in result.stderr.decode()
    assert b"sk_test_not_a_real_key" not in result.stderr


# -- usage errors ----------------------------------------------------------------


def assert_usage_error(result: subprocess.CompletedProcess[bytes], expected: str) -> None:
    text = result.stderr.decode("utf-8", errors="replace")
    assert result.returncode == 2, text
    assert result.stdout == b""
    assert text.startswith("python -m verifiers: error: ") and text.count("\n") == 1, text
    assert expected in text, text


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--context", "[1]"], "--context is not a JSON object"),
        (["--context", "{"], "--context is not a JSON object"),
        (["--sync", "http://127.0.0.1:9"], "--sync and --key-file go together"),
        (["--key-file", "/nonexistent"], "--sync and --key-file go together"),
        (["--sync", "http://127.0.0.1:9", "--key-file", "/nonexistent/key"], "--key-file /nonexistent/key"),
        (["--sync", "http://example.com", "--key-file", "/nonexistent/key"], "only https URLs"),
        (["--on-accept", "relay 'open"], "--on-accept cannot be split"),
        (["--on-reject", "  "], "--on-reject is empty"),
        (["--input", "/nonexistent/ttyUSB0"], "--input /nonexistent/ttyUSB0: cannot be opened"),
        (["--hook-timeout", "0"], "--hook-timeout must be"),
    ],
)
def test_usage_errors_exit_2_with_one_line(gate_args, extra, expected):
    assert_usage_error(run_gate(gate_args(*extra)), expected)


def test_no_jwks_and_no_keys_in_the_store_is_a_usage_error(gate_args):
    assert_usage_error(run_gate(gate_args(jwks=False)), "no key set")


def test_an_empty_key_file_is_a_usage_error(gate_args, tmp_path):
    key_file = tmp_path / "empty.key"
    key_file.write_text("\n", encoding="utf-8")
    result = run_gate(gate_args("--sync", "http://127.0.0.1:9", "--key-file", str(key_file)))
    assert_usage_error(result, "does not hold one scanner key")


def test_an_unusable_store_is_a_usage_error(gate_args, store):
    store.write_bytes(b"not a database" * 100)
    assert_usage_error(run_gate(gate_args()), "cannot open the verifier store")


# -- the line splitter, in-process -------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 4096, 10**6])
def test_the_splitter_cuts_lines_wherever_the_chunks_end(chunk):
    data = b"one\r\ntwo\n\nthree\r\r\n" + b"X" * 50 + b"\nfour\n" + b"Y" * 30 + b"\nfive"
    splitter = LineSplitter(max_line=40)
    lines = [line for start in range(0, len(data), chunk) for line in splitter.feed(data[start : start + chunk])]
    lines += splitter.finish()
    assert lines == [b"one", b"two", b"", b"three\r", b"X" * 41, b"four", b"Y" * 30, b"five"]


def test_the_splitter_holds_one_line_s_bytes_at_most():
    splitter = LineSplitter(max_line=100)
    assert splitter.feed(b"Z" * 1000) == [b"Z" * 101]
    for _ in range(1000):
        assert splitter.feed(b"Z" * 1000) == []
        assert len(splitter._buffer) == 0
    assert splitter.feed(b"Z\nok\n") == [b"ok"]
    assert splitter.finish() == []

