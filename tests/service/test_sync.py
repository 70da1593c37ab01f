"""``OfflineVerifier.sync()`` against the real service, and through every interruption.

The service runs for real (werkzeug's server in a thread, on SQLite and on
PostgreSQL); the verifier keeps its state in an SQLite file. After each
interruption (the service down, a connection cut after the service stored a
batch, a hung service, the syncing process killed) a plain ``sync()``
resumes, and every usage record is on the service exactly once.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import ISSUER, LiveServer
from sqlalchemy import func, select

import verifiers.sync
from codeservice import db
from codeservice.issuance import issue_code
from codeservice.keystore import KeyStore
from codeservice.models import UsageRecord
from verifiers import ConfigurationError, KeySet, OfflineVerifier, SyncReport
from verifiers.jose import b64url_decode

SCANNER_SCENES = "clinic,transit,venue"


# -- the service, live ---------------------------------------------------------------


@pytest.fixture
def server(app: Any) -> Iterator[LiveServer]:
    live = LiveServer(app)
    yield live
    live.stop()


@pytest.fixture
def scanner_key(runner: Any) -> str:
    result = runner.invoke(
        args=["scanners", "add", "--venue", "museum-1", "--device", "gate-1", "--scenes", SCANNER_SCENES]
    )
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


@pytest.fixture
def fresh_code(logged_in: Any) -> Callable[[], str]:
    """A new code of the logged-in resident, from the service."""
    return lambda: logged_in.get("/api/v1/code").get_json()["token"]


def rows_on_server(app: Any) -> int:
    with db.engine(app).connect() as connection:
        return connection.scalar(select(func.count()).select_from(UsageRecord))


def ids_on_server(app: Any) -> list[str]:
    with db.engine(app).connect() as connection:
        return list(connection.scalars(select(UsageRecord.id)))


def scanner(path: Path, keys: KeySet | None) -> OfflineVerifier:
    return OfflineVerifier(keys, issuer=ISSUER, store=path, venue_id="museum-1", device_id="gate-1")


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "scanner.db"


@pytest.fixture
def verifier(server: LiveServer, store_path: Path) -> Iterator[OfflineVerifier]:
    """A scanner that fetched the key set once, at installation."""
    with scanner(store_path, KeySet.from_jwks(f"{server.url}/.well-known/jwks.json")) as offline:
        yield offline


def scan_garbage(verifier: OfflineVerifier, count: int) -> list[str]:
    """``count`` refused scans (each logs a usage record); their record ids."""
    return [verifier.verify("not-a-code", "venue", {}).record_id for _ in range(count)]  # type: ignore[misc]


def pending(verifier: OfflineVerifier) -> int:
    return len(verifier.pending_records(1_000_000))


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- the happy path ------------------------------------------------------------------


def test_records_arrive_exactly_once(
    app: Any, server: LiveServer, verifier: OfflineVerifier, scanner_key: str, fresh_code: Callable[[], str]
) -> None:
    token = fresh_code()
    assert verifier.verify(token, "venue", {}).code == "accepted"
    assert verifier.verify(token, "venue", {}).code == "replayed"
    assert verifier.verify(fresh_code(), "transit", {"station": "人民广场", "direction": "in"}).ok
    scan_garbage(verifier, 2)
    sent = [record["id"] for record in verifier.pending_records(100)]

    report = verifier.sync(server.url, scanner_key)
    assert isinstance(report, SyncReport)
    assert report.ok, report.errors
    assert (report.uploaded, report.duplicates, report.batches) == (5, 0, 1)
    assert report.keys_refreshed and report.revocations_refreshed
    assert (report.keys_added, report.keys_removed, report.revoked) == ([], [], 0)
    assert 0 <= report.keys_age_seconds < 5 and 0 <= report.revocations_age_seconds < 5  # type: ignore[operator]
    assert sorted(ids_on_server(app)) == sorted(sent)
    assert pending(verifier) == 0

    # Nothing new: nothing sent; the key set and the list are confirmed by 304.
    again = verifier.sync(server.url, scanner_key)
    assert again.ok and (again.uploaded, again.duplicates, again.batches) == (0, 0, 0)
    assert again.keys_refreshed and again.revocations_refreshed
    assert rows_on_server(app) == 5

    # Uploaded records keep the decisions made offline.
    with db.engine(app).connect() as connection:
        online = connection.scalars(select(UsageRecord.online)).all()
        codes = sorted(connection.scalars(select(UsageRecord.code)))
    assert not any(online)
    assert codes == ["accepted", "accepted", "malformed", "malformed", "replayed"]


def test_batches_go_oldest_first(app: Any, server: LiveServer, verifier: OfflineVerifier, scanner_key: str) -> None:
    ids = scan_garbage(verifier, 25)
    report = verifier.sync(server.url, scanner_key, batch_size=10)
    assert report.ok and (report.uploaded, report.batches) == (25, 3)
    assert sorted(ids_on_server(app)) == sorted(ids)


def test_a_key_rotation_reaches_the_verifier(
    server: LiveServer, verifier: OfflineVerifier, scanner_key: str, keys_dir: Path, fresh_code: Callable[[], str]
) -> None:
    old_kid = next(iter(verifier.keys))
    before = fresh_code()
    new_kid = KeyStore(keys_dir).rotate().kid
    after = fresh_code()
    assert verifier.verify(after, "clinic", {"department": "cardiology"}).code == "unknown_key"

    report = verifier.sync(server.url, scanner_key)
    assert report.ok, report.errors
    assert (report.keys_added, report.keys_removed) == ([new_kid], [])
    assert set(verifier.keys) == {old_kid, new_kid}
    assert verifier.verify(fresh_code(), "venue", {}).code == "accepted"  # signed by the new key
    assert verifier.verify(before, "transit", {"station": "A", "direction": "in"}).code == "accepted"  # the old

    # Retired at once (a leak): the next sync withdraws it.
    KeyStore(keys_dir).retire(old_kid)
    report = verifier.sync(server.url, scanner_key)
    assert (report.keys_added, report.keys_removed) == ([], [old_kid])
    assert verifier.verify(before, "clinic", {"department": "x"}).code == "unknown_key"


def test_a_revocation_reaches_the_verifier(
    server: LiveServer,
    store_path: Path,
    verifier: OfflineVerifier,
    scanner_key: str,
    runner: Any,
    resident: dict[str, Any],
    fresh_code: Callable[[], str],
) -> None:
    token = fresh_code()  # taken before the revocation, still valid after it
    result = runner.invoke(args=["residents", "revoke", "--phone", resident["phone"]])
    assert result.exit_code == 0, result.output

    report = verifier.sync(server.url, scanner_key)
    assert report.ok and report.revocations_refreshed and report.revoked == 1
    decision = verifier.verify(token, "venue", {})
    assert (decision.ok, decision.code) == (False, "revoked")
    verifier.close()

    # Reopened on its store with no network: it still knows the keys and the list.
    with scanner(store_path, None) as reopened:
        assert reopened.verify(token, "transit", {"station": "A", "direction": "in"}).code == "revoked"
        status = reopened.status()
        assert status.revoked == 1 and status.revocations_issued_at is not None


# -- interruptions ---------------------------------------------------------------------


def test_the_service_down_then_back(
    app: Any, server: LiveServer, verifier: OfflineVerifier, scanner_key: str, fresh_code: Callable[[], str]
) -> None:
    ids = scan_garbage(verifier, 30)
    keys_before = set(verifier.keys)
    server.stop()

    report = verifier.sync(server.url, scanner_key, batch_size=10)
    assert (report.uploaded, report.batches) == (0, 0)
    assert not report.keys_refreshed and not report.revocations_refreshed
    assert [error.split(":")[0] for error in report.errors] == ["keys", "revocations", "upload"]
    assert all("unreachable" in error or "no answer" in error for error in report.errors)
    assert scanner_key not in str(report)
    assert pending(verifier) == 30 and set(verifier.keys) == keys_before
    assert verifier.verify(fresh_code(), "venue", {}).ok  # still verifying, with the cached keys

    server.start()  # back, on the same port
    report = verifier.sync(server.url, scanner_key, batch_size=10)
    assert report.ok, report.errors
    assert (report.uploaded, report.duplicates, report.batches) == (31, 0, 4)
    assert rows_on_server(app) == 31 and set(ids) <= set(ids_on_server(app))
    assert pending(verifier) == 0


class CuttingProxy:
    """Relays HTTP to the service, but for chosen usage uploads closes the client's
    connection (a reset) AFTER the service has answered, before relaying the answer:
    the service stored the batch, the scanner never hears so."""

    def __init__(self, target_port: int, cut: set[int]) -> None:
        self.target_port = target_port
        self.cut = cut
        self.uploads = 0
        self.problems: list[BaseException] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        self.thread.join(10)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            with client:
                client.settimeout(30)
                request = _read_request(client)
                with socket.create_connection(("127.0.0.1", self.target_port), timeout=30) as upstream:
                    upstream.sendall(request)
                    answer = _read_to_end(upstream)  # the service has committed and answered
                if request.startswith(b"POST /api/v1/usage "):
                    self.uploads += 1
                    if self.uploads in self.cut:
                        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        return  # closed with a reset, the answer never relayed
                client.sendall(answer)
        except OSError as exc:  # pragma: no cover - reported by the test
            self.problems.append(exc)


def _read_request(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_connection_cut_after_the_service_stored_the_batch(
    app: Any, server: LiveServer, verifier: OfflineVerifier, scanner_key: str
) -> None:
    ids = scan_garbage(verifier, 25)
    proxy = CuttingProxy(server.port, cut={2})
    try:
        report = verifier.sync(proxy.url, scanner_key, batch_size=10)
    finally:
        proxy.close()
    assert proxy.problems == []
    # Batch 1 acknowledged; batch 2 stored by the service, its answer lost; batch 3 never sent.
    assert (report.uploaded, report.duplicates, report.batches) == (10, 0, 1)
    assert len(report.errors) == 1 and report.errors[0].startswith("upload: no answer to a batch of 10 records")
    assert report.keys_refreshed and report.revocations_refreshed  # they went through the proxy
    assert rows_on_server(app) == 20
    assert pending(verifier) == 15

    resumed = verifier.sync(server.url, scanner_key, batch_size=10)
    assert resumed.ok, resumed.errors
    assert (resumed.uploaded, resumed.duplicates, resumed.batches) == (5, 10, 2)
    assert rows_on_server(app) == 25 and sorted(ids_on_server(app)) == sorted(ids)
    assert pending(verifier) == 0


def test_a_hung_service_times_out(verifier: OfflineVerifier, scanner_key: str) -> None:
    scan_garbage(verifier, 3)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        started = time.monotonic()
        report = verifier.sync(f"http://127.0.0.1:{silent.getsockname()[1]}", scanner_key, timeout=0.3)
        elapsed = time.monotonic() - started
    assert len(report.errors) == 3 and all("timed out" in error for error in report.errors), report.errors
    assert elapsed < 5
    assert pending(verifier) == 3


class HoldUpload:
    """WSGI middleware: the ``hold_at``-th usage upload is stored, then its answer
    waits until released (the test kills the uploading process meanwhile)."""

    def __init__(self, app: Any, hold_at: int) -> None:
        self.app = app
        self.hold_at = hold_at
        self.uploads = 0
        self.lock = threading.Lock()
        self.stored = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/api/v1/usage":
            with self.lock:
                self.uploads += 1
                number = self.uploads
            if number == self.hold_at:
                answer = self.app(environ, start_response)
                try:
                    body = b"".join(answer)
                finally:
                    answer.close()
                self.stored.set()
                self.release.wait(60)
                return [body]
        return self.app(environ, start_response)


SYNC_IN_A_CHILD = textwrap.dedent(
    """
    import os, sys
    from verifiers import OfflineVerifier

    verifier = OfflineVerifier(None, issuer=sys.argv[1], store=sys.argv[2])   # the keys it cached
    report = verifier.sync(sys.argv[3], os.environ["SCANNER_KEY"], batch_size=100)
    print(report)
    """
)


def test_the_syncing_process_killed_midway(
    app: Any, verifier: OfflineVerifier, store_path: Path, scanner_key: str, tmp_path: Path
) -> None:
    total = 5000
    # The first sync's upload is the empty report-in of a verifier with nothing to upload; then the child's 10th.
    hold = HoldUpload(app, hold_at=11)
    live = LiveServer(hold)
    try:
        assert verifier.sync(live.url, scanner_key).ok  # caches the key set in the store
        ids = scan_garbage(verifier, total)
        verifier.close()

        script = tmp_path / "sync_child.py"
        script.write_text(SYNC_IN_A_CHILD)
        child = subprocess.Popen(
            [sys.executable, str(script), ISSUER, str(store_path), live.url],
            env={**os.environ, "SCANNER_KEY": scanner_key},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert hold.stored.wait(60), "the child never reached its 10th batch"
            os.kill(child.pid, signal.SIGKILL)
            stdout, stderr = child.communicate(timeout=30)
        finally:
            hold.release.set()
            if child.poll() is None:  # pragma: no cover
                child.kill()
                child.communicate()
        assert child.returncode == -signal.SIGKILL, stderr
        assert stdout == b""  # it never finished

        # 10 batches stored by the service; 9 acknowledged before the kill.
        assert rows_on_server(app) == 1000
        with scanner(store_path, None) as resumed:
            assert pending(resumed) == total - 900
            report = resumed.sync(live.url, scanner_key)
            assert report.ok, report.errors
            assert (report.uploaded, report.duplicates) == (total - 1000, 100)
            assert pending(resumed) == 0
        on_server = ids_on_server(app)
        assert len(on_server) == total and sorted(on_server) == sorted(ids)
    finally:
        hold.release.set()
        live.stop()


# -- the service's answers that are not what they should be -----------------------------


class FakeService:
    """A stand-in for the service whose answers a test chooses, path by path."""

    def __init__(self, routes: dict[str, tuple[int, str, bytes]]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                fake.seen.append((self.command, self.path, dict(self.headers)))
                status, media_type, body = fake.routes.get(self.path, (404, "application/json", b"{}"))
                self.send_response(status)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def _usage_answer(accepted: int, duplicates: int) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps({"accepted": accepted, "duplicates": duplicates}).encode()


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        pytest.param(
            {
                "/.well-known/jwks.json": (500, "text/html", b"<h1>oops</h1>"),
                "/api/v1/revocations": (503, "text/plain", b"maintenance"),
                "/api/v1/usage": (502, "text/html", b"bad gateway"),
            },
            ["HTTP 500", "HTTP 503", "HTTP 502"],
            id="5xx",
        ),
        pytest.param(
            {
                "/.well-known/jwks.json": (200, "application/json", b"{not json"),
                "/api/v1/revocations": (200, "application/jose", "é.é.é".encode()),
                "/api/v1/usage": (200, "application/json", b"{not json"),
            },
            ["not a JSON key set", "not a compact JWS", "does not acknowledge"],
            id="bad-bodies",
        ),
        pytest.param(
            {
                "/.well-known/jwks.json": (200, "application/json", b'{"keys": []}'),
                "/api/v1/revocations": (200, "application/jose", b"a.b.c"),
                "/api/v1/usage": _usage_answer(1, 0),  # three records sent
            },
            ["the key set is empty", "not a well-formed compact JWS", "does not acknowledge"],
            id="wrong-content",
        ),
        pytest.param(
            {
                "/.well-known/jwks.json": (302, "text/html", b""),
                "/api/v1/revocations": (200, "application/jose", b""),
                "/api/v1/usage": (
                    400,
                    "application/json",
                    b'{"error": {"code": "invalid_usage_record", "message": "records[0].id: must be a UUID"}}',
                ),
            },
            ["HTTP 302", "not a well-formed", "HTTP 400 invalid_usage_record: records[0].id: must be a UUID"],
            id="4xx-and-redirects",
        ),
    ],
)
def test_bad_answers_are_reported_and_change_nothing(
    tmp_path: Path, key_set: KeySet, routes: dict[str, tuple[int, str, bytes]], expected: list[str]
) -> None:
    fake = FakeService(routes)
    try:
        with scanner(tmp_path / "scanner.db", key_set) as offline:
            offline.set_revocations(["aaaaaaaaaaaaaaaa"])
            scan_garbage(offline, 3)
            report = offline.sync(fake.url, "csk_secret")
            assert [error.split(":")[0] for error in report.errors] == ["keys", "revocations", "upload"]
            for error, words in zip(report.errors, expected, strict=True):
                assert words in error, report.errors
            assert (report.uploaded, report.batches, report.keys_refreshed, report.revocations_refreshed) == (
                0,
                0,
                False,
                False,
            )
            assert pending(offline) == 3
            assert offline.keys is key_set and offline.revoked == {"aaaaaaaaaaaaaaaa"}
            assert "csk_secret" not in str(report)
    finally:
        fake.close()
    upload = next(headers for method, path, headers in fake.seen if path == "/api/v1/usage")
    assert upload["Authorization"] == "Bearer csk_secret"
    assert upload["Content-Type"] == "application/json"


def test_a_code_served_as_the_revocation_list_is_refused(
    tmp_path: Path, key_set: KeySet, jwks: dict[str, Any], make_token: Callable[..., str]
) -> None:
    routes = {
        "/.well-known/jwks.json": (200, "application/json", json.dumps(jwks).encode()),
        "/api/v1/revocations": (200, "application/jose", make_token(now=int(time.time())).encode()),
        "/api/v1/usage": _usage_answer(0, 0),
    }
    fake = FakeService(routes)
    try:
        with scanner(tmp_path / "scanner.db", key_set) as offline:
            report = offline.sync(fake.url, "csk_secret")
    finally:
        fake.close()
    assert report.keys_refreshed and not report.revocations_refreshed
    assert report.errors == [
        f"revocations: {fake.url}/api/v1/revocations: revocation list refused: its typ is not "
        "rsc-revocations+jwt (is it a code?); keeping the cached list"
    ]


def test_an_invalid_scanner_key_stops_the_upload_only(
    server: LiveServer, verifier: OfflineVerifier, app: Any
) -> None:
    scan_garbage(verifier, 2)
    report = verifier.sync(server.url, "csk_not-a-key")
    assert report.keys_refreshed and report.revocations_refreshed
    assert len(report.errors) == 1 and "HTTP 401 invalid_scanner_key" in report.errors[0]
    assert pending(verifier) == 2 and rows_on_server(app) == 0


# -- records the service will never take ------------------------------------------------


@pytest.fixture
def key_without_venue(runner: Any) -> str:
    """A key of the same scanner's venue and device that names clinic and transit, not venue."""
    result = runner.invoke(
        args=["scanners", "add", "--venue", "museum-1", "--device", "gate-1", "--scenes", "clinic,transit"]
    )
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def scan_at(verifier: OfflineVerifier, scene: str, count: int) -> list[str]:
    return [verifier.verify("not-a-code", scene, {}).record_id for _ in range(count)]  # type: ignore[misc]


def test_a_record_the_service_refuses_is_set_aside_and_the_rest_go_on(
    app: Any, server: LiveServer, verifier: OfflineVerifier, key_without_venue: str
) -> None:
    before = scan_at(verifier, "clinic", 3)
    (refused,) = scan_at(verifier, "venue", 1)
    after = scan_at(verifier, "transit", 3)

    report = verifier.sync(server.url, key_without_venue)
    assert report.set_aside == [refused]
    assert (report.uploaded, report.duplicates) == (6, 0)
    assert len(report.errors) == 1 and f"refused record {refused}" in report.errors[0], report.errors
    assert sorted(ids_on_server(app)) == sorted(before + after)
    assert pending(verifier) == 0
    (entry,) = verifier.set_aside_records()
    assert entry["record"]["id"] == refused and "scene" in entry["reason"], entry

    again = verifier.sync(server.url, key_without_venue)
    assert again.ok and again.set_aside == [] and again.uploaded == 0


def test_past_ten_refusals_in_one_sync_the_upload_stops_and_requeue_brings_them_back(
    app: Any, server: LiveServer, verifier: OfflineVerifier, key_without_venue: str, scanner_key: str
) -> None:
    refused = scan_at(verifier, "venue", 12)

    report = verifier.sync(server.url, key_without_venue)
    assert report.set_aside == refused[:10]
    assert "invalid_usage_record" in report.errors[-1] and "they stay in the outbox" in report.errors[-1]
    assert [record["id"] for record in verifier.pending_records()] == refused[10:]
    assert rows_on_server(app) == 0

    # The operator gives the scanner a key that names venue, and puts them back.
    assert verifier.requeue_set_aside() == 10
    fixed = verifier.sync(server.url, scanner_key)
    assert fixed.ok and fixed.uploaded == 12
    assert sorted(ids_on_server(app)) == sorted(refused)
    assert verifier.set_aside_records() == []


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("http://service.example", {}),  # plain http beyond loopback
        ("ftp://127.0.0.1", {}),
        ("", {}),
        ("http://127.0.0.1:1", {"batch_size": 0}),
        ("http://127.0.0.1:1", {"batch_size": 1001}),
        ("http://127.0.0.1:1", {"timeout": 0}),
    ],
)
def test_bad_arguments_are_the_integrators_to_fix(key_set: KeySet, url: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        OfflineVerifier(key_set, issuer=ISSUER).sync(url, "csk_key", **kwargs)
    with pytest.raises(ConfigurationError):
        OfflineVerifier(key_set, issuer=ISSUER).sync("http://127.0.0.1:1", "")


# -- a long time offline ------------------------------------------------------------------


def test_offline_for_a_week_it_keeps_verifying_and_says_how_old_its_keys_are(
    server: LiveServer,
    verifier: OfflineVerifier,
    store_path: Path,
    scanner_key: str,
    keys_dir: Path,
    logged_in: Any,
    fresh_code: Callable[[], str],
) -> None:
    synced_at = time.time()
    assert verifier.sync(server.url, scanner_key, now=synced_at).ok
    sub = json.loads(b64url_decode(fresh_code().split(".")[1]))["sub"]
    verifier.close()
    server.stop()

    week = 7 * 86400
    signer = KeyStore(keys_dir).signer()
    with scanner(store_path, None) as offline:  # restarted, no network
        status = offline.status(now=synced_at + week)
        assert status.keys_fetched_at == synced_at
        assert status.keys_age_seconds == pytest.approx(week)
        assert status.revocations_age_seconds == pytest.approx(week)
        assert status.kids == [signer.kid]
        later = int(synced_at) + week
        token = issue_code(signer, sub=sub, scopes=["venue"], category=None, now=later, issuer=ISSUER)
        assert offline.verify(token, "venue", {}, now=later).code == "accepted"

        report = offline.sync(server.url, scanner_key, now=synced_at + week + 60)
        assert len(report.errors) == 3
        assert report.keys_age_seconds == pytest.approx(week + 60)
        assert report.revocations_age_seconds == pytest.approx(week + 60)
        assert offline.status(now=synced_at + 2 * week).keys_age_seconds == pytest.approx(2 * week)
        assert offline.keys_fetched_at == synced_at  # a failed sync changes nothing
    server.start()


def test_keys_given_by_hand_have_no_age_until_confirmed(
    server: LiveServer, store_path: Path, scanner_key: str, key_set: KeySet
) -> None:
    with scanner(store_path, key_set) as offline:
        assert offline.status().keys_age_seconds is None  # nobody said how current they are
        assert offline.status().revocations_age_seconds is None
        report = offline.sync(server.url, scanner_key)
        assert report.ok and report.keys_refreshed
        assert sorted(report.keys_removed) == sorted(key_set)  # the hand-given keys were not the service's
        assert offline.status().keys_age_seconds is not None
    with pytest.raises(ConfigurationError, match="no key set"):
        OfflineVerifier(None, issuer=ISSUER)  # an empty store has nothing to start from
    with pytest.raises(ConfigurationError, match="no key set"):
        OfflineVerifier(None, issuer=ISSUER, store=store_path.with_name("new.db"))


# -- the module's seams --------------------------------------------------------------


def test_sync_knows_a_verifier_only_by_its_protocol(key_set: KeySet) -> None:
    """No import of verifiers.verifier from sync, not even for type checking: the two import no cycle."""
    tree = ast.parse(Path(verifiers.sync.__file__).read_text(encoding="utf-8"))
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not [name for name in imported if name.rsplit(".", 1)[-1] == "verifier"]
    verifier: verifiers.sync.SyncableVerifier = OfflineVerifier(key_set, issuer=ISSUER)
    assert verifier.outbox is not None and verifier.freshness.keys_etag is None
