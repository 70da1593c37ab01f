"""Concurrent presentations through real servers: one code is accepted once, by any instance.

Two separate gunicorn masters (instances A and B, each 2 worker processes of
8 threads: ``-k gthread``) serve one database, a shared SQLite file or a
private PostgreSQL schema. Client threads connect first, then wait on a
``threading.Barrier`` and send their requests together.

- (a) 16 presentations of one code at once: exactly one ``accepted``, 15
  ``replayed``, 16 usage records;
- (b) a resident's two different codes at two transit gates at once: one
  ``accepted`` entry and one ``passback``; 16 residents at a venue of
  capacity 1 at once: exactly one ``accepted``;
- (c) the same code at instance A, then at B: ``replayed``; at both at once:
  exactly one ``accepted``;
- (d) one paper code (no replay rule) presented 16 times at once at a
  staffed venue door: exactly one ``accepted``, 15 ``already_entered``.

The servers need gunicorn; without it these tests are skipped, unless
``CODESERVICE_REQUIRE_SERVERS=1`` makes that a failure.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import ISSUER, registration
from servers import (
    Answer,
    Server,
    add_scanners,
    flask_cli,
    jti_of,
    prepare_service,
    private_schema,
    request,
    require_gunicorn,
    send,
    serve,
)
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from codeservice import create_app
from codeservice.issuance import issue_code, new_code_id
from codeservice.keystore import KeyStore
from codeservice.models import SceneStateEntry, SeenCode, UsageRecord
from verifiers.jose import b64url_decode, b64url_encode
from verifiers.offline_codes import mint_credential, paper_code

CLIENTS = 16
REQUEST_TIMEOUT = 60
ENTRY = {"station": "People's Square", "direction": "in", "line": "1"}


# -- requests ------------------------------------------------------------------


# -- the backends: one database, two instances -------------------------------------


@dataclass
class Backend:
    name: str
    database_url: str
    keys_dir: Path
    workdir: Path
    engine: Engine
    env: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)
    """Scanner keys by device: ``gate-1``, ``gate-2`` (venue ``metro``), ``door`` (venue ``hall``)."""
    servers: dict[str, Server] = field(default_factory=dict)

    def code(self, *, sub: str | None = None, scopes: tuple[str, ...] = ("clinic", "transit", "venue")) -> str:
        return issue_code(
            KeyStore(self.keys_dir).signer(), sub=sub or new_code_id(), scopes=scopes,
            category=None, now=int(time.time()), ttl=120, issuer=ISSUER,
        )

    def scalar(self, statement: Any) -> Any:
        with Session(self.engine) as session:
            return session.scalar(statement)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    require_gunicorn("the concurrency tests")
    workdir = tmp_path_factory.mktemp(f"concurrency-{request.param}")
    if request.param == "sqlite":
        database: contextlib.AbstractContextManager[str] = contextlib.nullcontext(
            f"sqlite:///{workdir / 'codeservice.db'}"
        )
    else:
        database = private_schema("cs_conc")
    with database as database_url:
        engine = create_engine(database_url)
        try:
            keys_dir, env, keys = prepare_service(
                database_url,
                workdir,
                (("metro", "gate-1", "transit"), ("metro", "gate-2", "transit"), ("hall", "door", "clinic,venue")),
            )
            flask_cli(env, workdir, "init-db")  # safe to repeat
            backend = Backend(request.param, database_url, keys_dir, workdir, engine, env, keys)
            yield backend
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def servers(backend: Backend) -> Iterator[dict[str, Server]]:
    """Instances A and B on the backend's database; stopped (and killed if need be) at teardown."""
    with serve(backend.env, backend.workdir) as started:
        yield started


# -- presenting at once ------------------------------------------------------------


def at_once(targets: list[tuple[Server, str, dict[str, Any]]]) -> list[Answer]:
    """POST each ``(server, key, body)`` to /api/v1/verify from its own thread, all together.

    Every thread opens its connection first, then waits on a barrier: the
    requests leave together.
    """
    barrier = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)

    def present(index: int, server: Server, key: str, body: dict[str, Any]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT)
        try:
            connection.connect()
            barrier.wait(timeout=30)
            results[index] = send(connection, "POST", "/api/v1/verify", body, key=key)
        except BaseException as exc:  # reported by the caller
            barrier.abort()
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=present, args=(i, *target), daemon=True) for i, target in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT + 40)
    assert not any(thread.is_alive() for thread in threads), "a client thread did not finish"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    for answer in results:
        assert answer.status == 200, answer.body
    return results


def codes(results: list[Answer]) -> Counter[str]:
    return Counter(answer.body["code"] for answer in results)


def usage_for(backend: Backend, jti: str) -> int:
    return backend.scalar(select(func.count()).select_from(UsageRecord).where(UsageRecord.jti == jti))


def spread(servers: dict[str, Server], count: int) -> list[Server]:
    """``count`` servers, alternating A and B."""
    order = [servers["A"], servers["B"]]
    return [order[i % 2] for i in range(count)]


CLINIC = {"department": "dental"}


# -- (a) one code, 16 presentations at once ----------------------------------------------


@pytest.mark.parametrize("instances", ["A", "A+B"])
def test_one_code_presented_16_times_at_once_is_accepted_once(backend, servers, instances):
    targets = [servers["A"]] * CLIENTS if instances == "A" else spread(servers, CLIENTS)
    for _ in range(3):
        token = backend.code()
        body = {"token": token, "scene": "clinic", "context": CLINIC}
        results = at_once([(server, backend.keys["door"], body) for server in targets])
        assert codes(results) == Counter(accepted=1, replayed=CLIENTS - 1)
        assert usage_for(backend, jti_of(token)) == CLIENTS
        assert backend.scalar(select(func.count()).select_from(SeenCode).where(SeenCode.jti == jti_of(token))) == 1


# -- (b) scene state under concurrency -------------------------------------------------------


def resident_codes(backend: Backend, count: int) -> list[str]:
    """``count`` different real codes of one newly registered resident (the service's own routes)."""
    app = create_app(
        {
            "DATABASE_URL": backend.database_url,
            "KEYS_DIR": str(backend.keys_dir),
            "ENV": "development",
            "RATE_LIMITS": "off",
        }
    )
    try:
        client = app.test_client()
        body = registration()
        assert client.post("/api/v1/residents", json=body).status_code == 201
        session = client.post("/api/v1/session", json={"phone": body["phone"], "password": body["password"]})
        assert session.status_code == 200
        tokens = [client.get("/api/v1/code").get_json()["token"] for _ in range(count)]
    finally:
        from codeservice import db

        db.engine(app).dispose()
    assert len({jti_of(t) for t in tokens}) == count
    return tokens


def test_one_residents_two_codes_at_two_gates_at_once(backend, servers):
    """Transit entry: one trip opens; the other gate sees it and refuses (passback)."""
    rounds = [resident_codes(backend, 2)] + [
        [backend.code(sub=sub), backend.code(sub=sub)] for sub in (new_code_id() for _ in range(7))
    ]
    for tokens in rounds:
        targets = [
            (servers["A"], backend.keys["gate-1"], {"token": tokens[0], "scene": "transit", "context": ENTRY}),
            (servers["B"], backend.keys["gate-2"], {"token": tokens[1], "scene": "transit", "context": ENTRY}),
        ]
        results = at_once(targets)
        assert codes(results) == Counter(accepted=1, passback=1)
        accepted = next(answer.body for answer in results if answer.body["ok"])
        refused = next(answer.body for answer in results if not answer.body["ok"])
        assert refused["detail"]["trip_id"] == accepted["detail"]["trip_id"]  # the entry record's id (section 9)
        for token in tokens:
            assert usage_for(backend, jti_of(token)) == 1


def test_16_residents_at_a_venue_of_capacity_one_at_once(backend, servers):
    for _ in range(3):
        venue = f"room-{secrets.token_hex(4)}"  # a new venue each round: the venue is its scanner's
        door = add_scanners(backend.env, backend.workdir, ((venue, "door", "venue"),))["door"]
        context = {"capacity": 1}
        targets = [
            (server, door, {"token": backend.code(), "scene": "venue", "context": context})
            for server in spread(servers, CLIENTS)
        ]
        results = at_once(targets)
        assert codes(results) == Counter(accepted=1, capacity_full=CLIENTS - 1)
        count = backend.scalar(
            select(SceneStateEntry.value).where(SceneStateEntry.key.like(f"venue@%:count:%:{venue}"))
        )
        assert count == 1


# -- (c) two instances, one replay cache -------------------------------------------------------


def test_a_code_accepted_at_instance_a_is_replayed_at_instance_b(backend, servers):
    token = backend.code()
    body = {"token": token, "scene": "clinic", "context": CLINIC}
    key = backend.keys["door"]
    first = request(servers["A"].port, "POST", "/api/v1/verify", body, key=key, timeout=REQUEST_TIMEOUT)
    assert (first.status, first.body["code"]) == (200, "accepted")
    second = request(servers["B"].port, "POST", "/api/v1/verify", body, key=key, timeout=REQUEST_TIMEOUT)
    assert (second.status, second.body["ok"], second.body["code"], second.body["jti"]) == (
        200,
        False,
        "replayed",
        jti_of(token),
    )
    third = request(servers["A"].port, "POST", "/api/v1/verify", body, key=key, timeout=REQUEST_TIMEOUT)
    assert third.body["code"] == "replayed"
    assert usage_for(backend, jti_of(token)) == 3


def test_a_code_presented_at_both_instances_at_once_is_accepted_once(backend, servers):
    outcomes: Counter[str] = Counter()
    for _ in range(20):
        token = backend.code()
        body = {"token": token, "scene": "clinic", "context": CLINIC}
        results = at_once([(servers["A"], backend.keys["door"], body), (servers["B"], backend.keys["door"], body)])
        assert codes(results) == Counter(accepted=1, replayed=1)
        outcomes["A" if results[0].body["ok"] else "B"] += 1
        assert usage_for(backend, jti_of(token)) == 2
    assert sum(outcomes.values()) == 20


def test_usage_records_carry_the_keys_venue_and_device(backend, servers):
    token = backend.code(sub=new_code_id())
    body = {"token": token, "scene": "transit", "context": ENTRY, "venue_id": "forged", "device_id": "forged"}
    answer = request(
        servers["B"].port, "POST", "/api/v1/verify", body, key=backend.keys["gate-2"], timeout=REQUEST_TIMEOUT
    )
    assert (answer.status, answer.body["code"]) == (200, "accepted")
    with Session(backend.engine) as session:
        row = session.scalars(select(UsageRecord).where(UsageRecord.jti == jti_of(token))).one()
    assert (row.venue_id, row.device_id, row.scene, row.online) == ("metro", "gate-2", "transit", True)


# -- (d) a paper code: no replay rule, the venue's one entry a day --------------------------


def a_paper_code(backend: Backend) -> tuple[str, str]:
    """A paper code signed by the backend's key, and its ``jti`` (the cti in base64url)."""
    signer = KeyStore(backend.keys_dir).signer()
    now, cti = int(time.time()), secrets.token_bytes(8)
    claims = {
        1: ISSUER, 2: new_code_id(), 4: now + 86400, 6: now, 7: cti, "use": "paper",
        "scp": ["clinic", "transit", "venue"], "hint": {"n": "张*明", "b": "0521", "i": "123X"},
    }
    credential = mint_credential(claims, alg=signer.alg, kid=b64url_decode(signer.kid), sign=signer.sign)
    return paper_code(credential), b64url_encode(cti)


def test_one_paper_code_presented_16_times_at_once_at_a_venue_enters_once(backend, servers):
    """A paper code claims no ``jti``: the venue's entry, locked and written in one transaction, lets one in."""
    for _ in range(3):
        venue = f"desk-{secrets.token_hex(4)}"
        output = flask_cli(backend.env, backend.workdir, "scanners", "add", "--venue", venue, "--device", "desk",
                           "--scenes", "venue", "--attended")
        desk = output.strip().splitlines()[-1]
        token, jti = a_paper_code(backend)
        body = {"token": token, "scene": "venue", "context": {}}
        results = at_once([(server, desk, body) for server in spread(servers, CLIENTS)])
        assert codes(results) == Counter(accepted=1, already_entered=CLIENTS - 1)
        assert {answer.body["form"] for answer in results} == {"paper"}
        assert usage_for(backend, jti) == CLIENTS
        count_key = SceneStateEntry.key.like(f"venue@%:count:%:{venue}")
        count = backend.scalar(select(SceneStateEntry.value).where(count_key))
        assert count == 1


def test_the_servers_logged_no_error(backend, servers):
    """No 5xx, no traceback in either instance's log after the races above."""
    for server in servers.values():
        log = server.log_path.read_text(errors="replace")
        assert not re.search(r"Traceback|\[ERROR\]|database is locked|deadlock", log), log[-4000:]
