"""The scan benchmark's floors: a bare Flask app, served by gunicorn exactly like the service.

- ``GET /hello`` returns a small JSON: the ratio verify/hello is what
  verification costs over the framework and the server.
- ``GET /hello-jwt`` is the same plus one PyJWT decode of an EdDSA token
  (signature checked): what the signature check alone costs on this machine.
- ``GET /hello-durable/sqlite`` and ``/hello-durable/postgres`` are
  ``/hello-jwt`` plus one row inserted and committed durably, with the bare
  driver, in one statement: on SQLite a WAL database with
  ``synchronous=FULL`` (the commit waits for its flush), the workers taking
  turns on an exclusive ``flock`` around it as the service's
  ``SqliteWriter`` does (SQLite's own busy handler polls with sleeps of a
  millisecond and more: left to it, this floor ran at 0.26x hello instead of
  0.35x); on PostgreSQL one autocommit INSERT (``synchronous_commit`` on:
  the commit waits for its flush too). The best design known here of a
  verify endpoint that writes its usage record durably does at least this
  work: it is the ceiling for (b) and (c), measured in the same run.

``HELLO_SQLITE`` (a file path) and ``HELLO_POSTGRES`` (a libpq URL) name the
databases; each worker opens its own connection on first use.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, jsonify

app = Flask(__name__)

_KEY = Ed25519PrivateKey.generate()
_PUBLIC_KEY = _KEY.public_key()
_TOKEN = jwt.encode({"sub": "hello", "exp": int(time.time()) + 86_400}, _KEY, algorithm="EdDSA")
_CONNECTIONS: dict[str, Any] = {}
TABLE = "CREATE TABLE IF NOT EXISTS hello_durable (id TEXT PRIMARY KEY, claims TEXT NOT NULL)"


class _SqliteTurns:
    """A SQLite connection whose writes take turns on an ``flock``: waiting in the kernel, not in sleeps."""

    def __init__(self, path: str) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute(TABLE)
        self.lock = os.open(path + ".writer-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def execute(self, sql: str, params: tuple[Any, ...]) -> None:
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            self.connection.execute(sql, params)
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)


def _sqlite() -> Any:
    return _SqliteTurns(os.environ["HELLO_SQLITE"])


def _postgres() -> Any:
    import psycopg

    connection = psycopg.connect(os.environ["HELLO_POSTGRES"], autocommit=True)
    connection.execute(TABLE)
    return connection


OPENERS = {"sqlite": (_sqlite, "?"), "postgres": (_postgres, "%s")}


@app.get("/hello")
def hello() -> object:
    return jsonify(hello="world")


@app.get("/hello-jwt")
def hello_jwt() -> object:
    claims = jwt.decode(_TOKEN, _PUBLIC_KEY, algorithms=["EdDSA"])
    return jsonify(hello=claims["sub"])


@app.get("/hello-durable/<database>")
def hello_durable(database: str) -> object:
    claims = jwt.decode(_TOKEN, _PUBLIC_KEY, algorithms=["EdDSA"])
    opener, mark = OPENERS[database]
    connection = _CONNECTIONS.get(database) or _CONNECTIONS.setdefault(database, opener())
    connection.execute(f"INSERT INTO hello_durable VALUES ({mark}, {mark})", (str(uuid.uuid4()), json.dumps(claims)))
    return jsonify(hello=claims["sub"])
