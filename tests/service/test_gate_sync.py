"""The gate loop and the sync against the live service (SQLite and PostgreSQL).

- ``python -m verifiers gate --sync`` in a subprocess, its service stopped and
  started again mid-stream: every record arrives exactly once;
- the health report sent with each upload (``Codeservice-Verifier-Status``),
  an empty outbox's report-in included;
- the service's clock, measured from its answers' ``Date``: the gate warns
  past 30 s and says the offset at start and on SIGUSR1.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from helpers import LiveServer, add_scanner, service_code
from werkzeug.serving import WSGIRequestHandler

from verifiers import KeySet, OfflineVerifier
from verifiers.sync import STATUS_HEADER

ISSUER = "urn:codeservice:dev"
# RFC 8941 section 3.2: a dictionary; here every member an integer (section 3.3.1).
STATUS = re.compile(r"[a-z*][a-z0-9_.*-]*=-?[0-9]{1,15}(?:, [a-z*][a-z0-9_.*-]*=-?[0-9]{1,15})*")


def dated(skew: float = 0, date: str | None = None) -> type[WSGIRequestHandler]:
    """werkzeug's request handler with its ``Date`` ``skew`` seconds off (or ``date`` as it is)."""

    class Dated(WSGIRequestHandler):
        def date_time_string(self, timestamp: float | None = None) -> str:
            return date or formatdate(time.time() + skew, usegmt=True)

    return Dated


class Watch:
    """WSGI middleware: records each usage upload's health header."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.statuses: list[str | None] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/api/v1/usage":
            self.statuses.append(environ.get("HTTP_" + STATUS_HEADER.upper().replace("-", "_")))
        return self.app(environ, start_response)


@pytest.fixture
def watched(app: Any) -> Iterator[tuple[Watch, LiveServer]]:
    watch = Watch(app)
    live = LiveServer(watch)
    yield watch, live
    live.stop()


@pytest.fixture
def key(runner: Any) -> str:
    return add_scanner(runner, venue="museum-1", device="gate-1", scenes="venue,transit")[1]


def members(status: str | None) -> dict[str, int]:
    assert status is not None and STATUS.fullmatch(status), status
    return {name: int(value) for name, value in (member.split("=") for member in status.split(", "))}


def rows_on_server(app: Any) -> int:
    from sqlalchemy import func, select

    from codeservice import db
    from codeservice.models import UsageRecord

    with app.app_context():
        return int(db.session().scalar(select(func.count()).select_from(UsageRecord)))


# -- the health report ------------------------------------------------------------------


def test_every_sync_reports_its_health_even_with_nothing_to_upload(
    watched: tuple[Watch, LiveServer], key: str, tmp_path: Path, client: Any
) -> None:
    watch, live = watched
    keys = KeySet.from_jwks(client.get("/.well-known/jwks.json").get_json())
    with OfflineVerifier(keys, issuer=ISSUER, store=tmp_path / "gate.db") as verifier:
        first = verifier.sync(live.url, key)
        assert first.ok and first.batches == 0, first.errors
        assert len(watch.statuses) == 1  # the empty batch: the service heard from it
        report = members(watch.statuses[0])
        assert report["pending"] == 0 and report["keys-age"] == 0 and report["revocations-age"] == 0
        assert abs(report["clock-offset"]) <= 2
        for _ in range(5):
            verifier.verify("garbage", "venue", {})
        again = verifier.sync(live.url, key)
        assert again.ok and (again.uploaded, again.batches) == (5, 1)
        assert len(watch.statuses) == 2 and members(watch.statuses[1])["pending"] == 5
        assert again.clock_offset_seconds is not None and abs(again.clock_offset_seconds) < 2


def test_a_member_that_is_unknown_is_left_out(key: str, tmp_path: Path, client: Any, app: Any) -> None:
    """Answers whose ``Date`` cannot be read: no clock-offset member (and the upload goes on)."""
    watch = Watch(app)
    live = LiveServer(watch, dated(date="not a date"))
    try:
        keys = KeySet.from_jwks(client.get("/.well-known/jwks.json").get_json())
        with OfflineVerifier(keys, issuer=ISSUER, store=tmp_path / "gate.db") as verifier:
            report = verifier.sync(live.url, key)
        assert report.ok and report.clock_offset_seconds is None, report.errors
        assert set(members(watch.statuses[0])) == {"keys-age", "revocations-age", "pending"}
    finally:
        live.stop()


def test_the_status_header_is_an_rfc_8941_dictionary_of_integers() -> None:
    from verifiers.sync import status_header

    header = status_header({"keys-age": 120.4, "revocations-age": None, "clock-offset": -2.6, "pending": 5})
    assert header == "keys-age=120, clock-offset=-3, pending=5"
    assert status_header({"keys-age": 1e20}) == "keys-age=999999999999999"
    assert status_header({"pending": None}) == ""


# -- the gate loop against the service ---------------------------------------------------


def gate_process(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "verifiers", "gate", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def read_lines(fd: int, count: int, timeout: float = 60) -> list[bytes]:
    lines, pending, deadline = [], b"", time.monotonic() + timeout
    while len(lines) < count:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"{len(lines)} of {count} decisions in time"
        data = os.read(fd, 65536)
        assert data, "the gate closed its output"
        pending += data
        *complete, pending = pending.split(b"\n")
        lines.extend(complete)
    return lines


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.fixture
def gate_files(tmp_path: Path, client: Any, key: str) -> dict[str, Path]:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(client.get("/.well-known/jwks.json").get_json()), encoding="utf-8")
    key_file = tmp_path / "scanner.key"
    key_file.write_text(key + "\n", encoding="utf-8")
    return {"jwks": jwks, "key": key_file, "store": tmp_path / "gate.db"}


def test_background_sync_across_a_service_restart_uploads_every_record_once(
    app: Any, keys_dir: Path, watched: tuple[Watch, LiveServer], gate_files: dict[str, Path]
) -> None:
    watch, live = watched
    gate = gate_process(
        [
            "--scene", "venue", "--store", str(gate_files["store"]), "--jwks", str(gate_files["jwks"]),
            "--venue", "museum-1", "--device", "gate-1",
            "--sync", live.url, "--key-file", str(gate_files["key"]), "--sync-every", "0.3",
        ]
    )
    assert gate.stdin is not None and gate.stdout is not None
    total = 0
    try:
        for part in range(3):
            lines = [service_code(app, keys_dir) if n % 3 == 0 else f"garbage-{part}-{n}" for n in range(100)]
            gate.stdin.write("".join(line + "\n" for line in lines).encode("ascii"))
            gate.stdin.flush()
            read_lines(gate.stdout.fileno(), len(lines))
            total += len(lines)
            if part == 0:
                assert wait_for(lambda: rows_on_server(app) == 100), rows_on_server(app)
                live.stop()  # the service goes away mid-stream: scanning goes on
            elif part == 1:
                time.sleep(1)  # a few syncs fail meanwhile
                assert rows_on_server(app) == 100
                live.start()  # back, on the same port
        assert wait_for(lambda: rows_on_server(app) == total), (rows_on_server(app), total)
    finally:
        _stdout, stderr = gate.communicate(timeout=60)  # closes standard input: the end of the stream
    assert gate.returncode == 0, stderr
    assert rows_on_server(app) == total == 300
    text = stderr.decode()
    assert "sync: " in text and "unreachable" in text  # the failed syncs were said, not fatal
    with OfflineVerifier(None, issuer=ISSUER, store=gate_files["store"]) as verifier:
        assert verifier.pending_records() == []
    assert all(status is not None for status in watch.statuses)


def test_the_gate_warns_when_its_clock_is_off_and_reports_the_offset(
    app: Any, gate_files: dict[str, Path]
) -> None:
    skewed = LiveServer(app, dated(skew=100))
    try:
        gate = gate_process(
            [
                "--scene", "venue", "--store", str(gate_files["store"]), "--jwks", str(gate_files["jwks"]),
                "--sync", skewed.url, "--key-file", str(gate_files["key"]), "--sync-every", "0.3",
            ]
        )
        assert gate.stdin is not None and gate.stderr is not None
        deadline, said = time.monotonic() + 30, b""
        while b"behind the service" not in said and time.monotonic() < deadline:
            ready, _, _ = select.select([gate.stderr.fileno()], [], [], 1)
            if ready:
                said += os.read(gate.stderr.fileno(), 65536)
        gate.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        _stdout, rest = gate.communicate(timeout=60)
        text = (said + rest).decode()
    finally:
        skewed.stop()
    assert gate.returncode == 0, text
    assert "clock offset unknown (no sync yet)" in text.splitlines()[0]  # at start, before any sync
    assert re.search(r"this machine's clock is 10[01] s behind the service's \(more than 30 s\)", text), text
    assert re.search(r"clock offset \+10[01] s \(service minus this machine", text), text  # SIGUSR1
