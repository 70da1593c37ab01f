"""Helpers for tests that run the service as real servers on a private database.

- ``private_schema``: a new PostgreSQL schema, dropped afterwards (skipped, or
  failed under ``CODESERVICE_REQUIRE_SERVERS=1``, when PostgreSQL is absent);
- ``require_gunicorn``, ``service_env``, ``flask_cli``: what the servers need;
  ``prepare_service``: their keys, migrated schema and scanner keys;
- ``Server``: one gunicorn master on a loopback port, in its own process group;
  ``serve``: several of them, started together and stopped at the end;
- ``request`` / ``send``: one JSON request to them, as an ``Answer``;
  ``jti_of``: the ``jti`` of a code sent to them.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import PG_URL, new_keys_dir, skip_or_fail
from sqlalchemy import create_engine, text

from verifiers.jose import b64url_decode

STARTUP_SECONDS = 30
STOP_SECONDS = 10
WORKERS, THREADS = 2, 8
CLIENT_TIMEOUT = 10  # no answer may take longer, whatever the fault


@dataclass
class Answer:
    status: int
    body: Any  # the parsed JSON, else the text
    headers: dict[str, str]  # names in lower case


def send(
    connection: http.client.HTTPConnection, method: str, path: str, body: Any = None, *, key: str | None = None
) -> Answer:
    """One request on ``connection``: a JSON ``body``, a scanner ``key`` as the bearer."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = connection.getresponse()
    raw = response.read()
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = raw.decode("utf-8", "replace")
    return Answer(response.status, parsed, {k.lower(): v for k, v in response.getheaders()})


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = None,
    timeout: float = CLIENT_TIMEOUT,
) -> Answer:
    """One request on a new connection (never a keep-alive the server may have closed)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return send(connection, method, path, body, key=key)
    finally:
        connection.close()


@contextlib.contextmanager
def private_schema(prefix: str) -> Iterator[str]:
    """The URL of a new PostgreSQL schema ``PREFIX_…``, dropped (with its contents) on exit."""
    schema = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # any failure to reach it means "absent"
        admin.dispose()
        skip_or_fail(f"PostgreSQL is not reachable at {PG_URL}: {exc.__class__.__name__}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        admin.dispose()  # new connections: PostgreSQL may have been restarted meanwhile
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def require_gunicorn(tests: str) -> None:
    if importlib.util.find_spec("gunicorn") is None:
        skip_or_fail(f"gunicorn is not installed: {tests} run the service under it")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(database_url: str, keys_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODESERVICE_")}
    env.update(
        CODESERVICE_DATABASE_URL=database_url,
        CODESERVICE_KEYS_DIR=str(keys_dir),
        CODESERVICE_ENV="development",
        CODESERVICE_RATE_LIMITS="off",
    )
    return env


def flask_cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    """``flask --app codeservice ARGS`` with the servers' environment; its output."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "codeservice", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, f"flask {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def add_scanners(env: dict[str, str], cwd: Path, scanners: tuple[tuple[str, str, str], ...]) -> dict[str, str]:
    """``scanners add`` for each (venue, device, scenes); the new keys by device."""
    keys = {}
    for venue, device, scenes in scanners:
        output = flask_cli(env, cwd, "scanners", "add", "--venue", venue, "--device", device, "--scenes", scenes)
        keys[device] = output.strip().splitlines()[-1]
    return keys


def prepare_service(
    database_url: str, workdir: Path, scanners: tuple[tuple[str, str, str], ...]
) -> tuple[Path, dict[str, str], dict[str, str]]:
    """Keys in ``workdir``, the schema migrated (``init-db``) and ``scanners`` added, for servers on ``database_url``.

    Returns the keys directory, the servers' environment and the scanner keys by device.
    """
    keys_dir = new_keys_dir(workdir / "keys")
    env = service_env(database_url, keys_dir)
    flask_cli(env, workdir, "init-db")
    return keys_dir, env, add_scanners(env, workdir, scanners)


def jti_of(token: str) -> str:
    """A code's ``jti``, read from its claims without checking anything."""
    return json.loads(b64url_decode(token.split(".")[1]))["jti"]


def wait_healthy(
    port: int, process: subprocess.Popen[Any], deadline: float, name: str, log: Callable[[], str] = lambda: ""
) -> None:
    """Until the server on ``port`` answers ``/healthz`` with 200, by the monotonic ``deadline``.

    Fails the test, with ``log()``, if ``process`` exits first or the deadline passes.
    """
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{log()}")
        try:
            if healthz(port) == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{name} did not answer /healthz in time:\n{log()}")


def healthz(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


class Server:
    """One gunicorn master serving ``codeservice:create_app()`` on a loopback port, in its own process group."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / f"gunicorn-{name}.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int | None = None) -> None:
        self.port = port or free_port()
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "gunicorn",
                    "--workers", str(WORKERS), "--worker-class", "gthread", "--threads", str(THREADS),
                    "--bind", f"127.0.0.1:{self.port}",
                    "--timeout", "60", "--graceful-timeout", "3",
                    "codeservice:create_app()",
                ],
                env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: its workers are stopped with it
            )

    def wait_ready(self, seconds: float = STARTUP_SECONDS, *, deadline: float | None = None) -> None:
        """Until it answers ``/healthz`` with 200: within ``seconds``, or by the monotonic ``deadline``."""
        assert self.process is not None
        if deadline is None:
            deadline = time.monotonic() + seconds
        wait_healthy(self.port, self.process, deadline, f"gunicorn {self.name}", self.log_tail)

    def kill(self) -> None:
        """SIGKILL to the master and its workers (the whole process group)."""
        process = self.process
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=STOP_SECONDS)
        self.process = None

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        self.kill()  # any worker left in the group

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def serve(env: dict[str, str], workdir: Path, names: tuple[str, ...] = ("A", "B")) -> Iterator[dict[str, Server]]:
    """Servers by name, all answering within ``STARTUP_SECONDS``; stopped (and killed if need be) on exit."""
    started = {name: Server(name, env, workdir) for name in names}
    try:
        for server in started.values():
            server.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        for server in started.values():
            server.wait_ready(deadline=deadline)
        yield started
    finally:
        for server in started.values():
            server.stop()
