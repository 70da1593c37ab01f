"""gunicorn.conf.py: loaded as gunicorn loads it, and started for real once."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.app.base import Application
from gunicorn.config import Config
from helpers import PROJECT

ROOT = PROJECT
CONF = ROOT / "gunicorn.conf.py"
# gunicorn atoms that would put personal data or query strings in the access log (case matters:
# %(U)s is the path alone, %(u)s the user name): the query, the request line, the client address,
# the user, the referer, the user agent; and no header but the request id (cookies, credentials).
FORBIDDEN_ATOMS = ["%(q)s", "%(r)s", "%(h)s", "%(u)s", "%(f)s", "%(a)s"]
FORBIDDEN_HEADERS = ["{cookie}i", "{authorization}i", "{x-forwarded-for}i", "{set-cookie}o"]


class _ConfigOnly(Application):
    """gunicorn's own file loader, without parsing sys.argv or loading the app."""

    def __init__(self) -> None:  # Application.__init__ would parse the command line
        self.usage = self.prog = self.callable = None
        self.cfg = Config()

    def init(self, parser, opts, args):  # gunicorn's signature
        return None

    def load(self):  # pragma: no cover - never called
        raise AssertionError


def load_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[Config, dict]:
    for name in ("CODESERVICE_BIND", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = _ConfigOnly()
    module = app.load_config_from_file(str(CONF))
    return app.cfg, module


def test_settings_as_gunicorn_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = load_conf(monkeypatch)
    assert cfg.wsgi_app == "wsgi:app"
    assert cfg.bind == ["127.0.0.1:8000"]
    assert cfg.workers == 2 * os.cpu_count() + 1
    assert cfg.worker_class_str == "sync"
    assert (cfg.timeout, cfg.graceful_timeout, cfg.keepalive) == (30, 30, 5)
    assert cfg.max_requests == 10000 and cfg.max_requests_jitter > 0
    assert cfg.forwarded_allow_ips == ["127.0.0.1"]
    assert cfg.accesslog == "-"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = load_conf(
        monkeypatch, CODESERVICE_BIND="10.0.0.5:9000", WEB_CONCURRENCY="3", FORWARDED_ALLOW_IPS="10.0.0.1,10.0.0.2"
    )
    assert cfg.bind == ["10.0.0.5:9000"]
    assert cfg.workers == 3
    assert cfg.forwarded_allow_ips == ["10.0.0.1", "10.0.0.2"]


def test_access_log_format_holds_no_personal_data_or_query(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = load_conf(monkeypatch)
    fmt = cfg.access_log_format
    for atom in FORBIDDEN_ATOMS:
        assert atom not in fmt, atom
    for header in FORBIDDEN_HEADERS:
        assert header not in fmt.lower(), header
    assert "%({" not in fmt.replace("%({x-request-id}o)s", ""), "no other header or environ value"
    for atom in ("%(m)s", "%(U)s", "%(s)s", "%(B)s", "%(M)s", "%({x-request-id}o)s"):
        assert atom in fmt, atom


def test_child_exit_marks_the_worker_dead(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg, module = load_conf(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    live = tmp_path / "gauge_liveall_4242.db"
    other = tmp_path / "gauge_liveall_4343.db"
    live.write_bytes(b"")
    other.write_bytes(b"")
    cfg.child_exit(None, SimpleNamespace(pid=4242))
    assert not live.exists() and other.exists()
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    module["child_exit"](None, SimpleNamespace(pid=4343))  # not multiprocess mode: nothing to do
    assert other.exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path, headers={"X-Request-ID": "conf-test-1"})
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def test_serves_healthz_under_this_config(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODESERVICE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        CODESERVICE_BIND=f"127.0.0.1:{port}",
        CODESERVICE_KEYS_DIR=str(tmp_path / "keys"),
        CODESERVICE_DATABASE_URL=f"sqlite:///{tmp_path / 'codeservice.db'}",
        CODESERVICE_ENV="development",
        WEB_CONCURRENCY="1",
    )
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(CONF)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        status = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, headers = _get(port, "/healthz?secret=13800138000")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200, log.read_text(errors="replace")
        assert headers.get("X-Request-ID") == "conf-test-1"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)
    output = log.read_text(errors="replace")
    assert 'method=GET path="/healthz" status=200' in output, output
    assert "request_id=conf-test-1" in output, output
    assert "13800138000" not in output and "secret" not in output, output
