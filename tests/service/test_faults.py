"""Faults under load: real gunicorn instances on one PostgreSQL schema.

Two gunicorn masters (instances A and B, each ``-w 2`` gthread workers) serve
a private PostgreSQL schema, made and dropped by a fixture.

1. load: 400 verifications of distinct codes by 8 client threads over both
   instances: no 5xx, each accepted decision's usage record stored once;
2. PostgreSQL restarted while verifications flow: every answer is a 200 or a
   clean JSON 503 ``database_unavailable`` (never a 500, HTML or a hang), the
   service recovers by itself and every acknowledged decision is stored;
3. instance A killed with SIGKILL under load: B keeps answering 200 and every
   decision acknowledged by either instance is stored;
4. an offline verifier's 300 records synced to B in batches of 50 while B is
   killed and restarted twice (the acknowledgement of a stored batch lost each
   time): every record is on the service exactly once.

PostgreSQL and gunicorn are required: without them the module is skipped,
unless ``CODESERVICE_REQUIRE_SERVERS=1`` makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import ISSUER, PG_URL, skip_or_fail
from servers import (
    CLIENT_TIMEOUT,
    STARTUP_SECONDS,
    Answer,
    Server,
    free_port,
    jti_of,
    prepare_service,
    private_schema,
    request,
    require_gunicorn,
    serve,
)
from sqlalchemy import Engine, create_engine, exc, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from codeservice import create_app
from codeservice.issuance import issue_code, new_code_id
from codeservice.keystore import KeyStore
from codeservice.models import UsageRecord
from verifiers import KeySet, OfflineVerifier

CLINIC = {"department": "dental"}


# -- one database, two instances --------------------------------------------------------


@dataclass
class Backend:
    database_url: str
    keys_dir: Path
    workdir: Path
    engine: Engine
    env: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)

    def code(self) -> str:
        return issue_code(
            KeyStore(self.keys_dir).signer(), sub=new_code_id(), scopes=("clinic", "transit", "venue"),
            category=None, now=int(time.time()), ttl=300, issuer=ISSUER,
        )

    def usage_counts(self, jtis: list[str]) -> Counter[str]:
        """Usage rows per jti, for the given jtis."""
        counts: Counter[str] = Counter()
        with Session(self.engine) as session:
            for start in range(0, len(jtis), 500):
                chunk = jtis[start:start + 500]
                rows = session.execute(
                    select(UsageRecord.jti, func.count()).where(UsageRecord.jti.in_(chunk)).group_by(UsageRecord.jti)
                )
                counts.update(dict(rows.all()))
        return counts

    def usage_ids(self, jtis: list[str]) -> list[str]:
        with Session(self.engine) as session:
            return list(session.scalars(select(UsageRecord.id).where(UsageRecord.jti.in_(jtis))))


def pg_ready(timeout: float = 60) -> bool:
    """Wait until PostgreSQL accepts connections again; whether it did in time."""
    probe = create_engine(PG_URL, poolclass=NullPool, connect_args={"connect_timeout": 2})
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                with probe.connect() as connection:
                    connection.execute(text("SELECT 1"))
                return True
            except exc.DBAPIError:
                time.sleep(0.2)
        return False
    finally:
        probe.dispose()


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    require_gunicorn("the fault tests")
    if not PG_URL.startswith("postgresql"):
        skip_or_fail("the fault tests need PostgreSQL")
    with private_schema("cs_fault") as database_url:
        workdir = tmp_path_factory.mktemp("faults")
        engine = create_engine(database_url, pool_pre_ping=True)
        try:
            keys_dir, env, keys = prepare_service(
                database_url, workdir, (("hall", "door", "clinic,venue"), ("museum", "gate-9", "clinic,transit,venue"))
            )
            backend = Backend(database_url, keys_dir, workdir, engine, env, keys)
            yield backend
        finally:
            engine.dispose()
            pg_ready()  # a test restarted PostgreSQL: wait for it before dropping the schema


@pytest.fixture(scope="module")
def servers(backend: Backend) -> Iterator[dict[str, Server]]:
    with serve(backend.env, backend.workdir) as started:
        yield started


def verify_body(token: str) -> dict[str, Any]:
    return {"token": token, "scene": "clinic", "context": CLINIC}


@dataclass
class Outcome:
    """One verification as the client saw it."""

    instance: str
    jti: str
    token: str
    sent: float
    done: float
    answer: Answer | None = None
    error: BaseException | None = None


def present(backend: Backend, server: Server, token: str) -> Outcome:
    sent = time.monotonic()
    try:
        answer = request(server.port, "POST", "/api/v1/verify", verify_body(token), key=backend.keys["door"])
        return Outcome(server.name, jti_of(token), token, sent, time.monotonic(), answer=answer)
    except Exception as error:  # the caller judges it
        return Outcome(server.name, jti_of(token), token, sent, time.monotonic(), error=error)


def assert_acknowledged_are_stored(backend: Backend, outcomes: list[Outcome]) -> int:
    """Every 200 decision has exactly one usage row; the number of them."""
    acknowledged = [o.jti for o in outcomes if o.answer is not None and o.answer.status == 200]
    counts = backend.usage_counts(acknowledged)
    missing = [jti for jti in acknowledged if counts[jti] != 1]
    assert not missing, f"{len(missing)} acknowledged decisions without exactly one usage row: {missing[:5]}"
    return len(acknowledged)


def assert_clean_error(outcome: Outcome) -> None:
    answer = outcome.answer
    assert answer is not None
    assert answer.status == 503, (outcome.instance, answer.status, answer.body)
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
    assert isinstance(answer.body, dict) and answer.body["error"]["code"] == "database_unavailable", answer.body
    assert int(answer.headers["retry-after"]) > 0


# -- the error handler, in process -----------------------------------------------------------


def test_a_lost_database_connection_is_a_clean_503(backend: Backend) -> None:
    """Both ways the database can fail a request map to 503 database_unavailable with Retry-After."""
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    app = create_app(
        {"DATABASE_URL": closed, "KEYS_DIR": str(backend.keys_dir), "ENV": "development", "RATE_LIMITS": "off"}
    )

    def driver_error() -> Any:  # what the verify path's raw cursor raises after a restart
        raise psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")

    def statement_error() -> Any:  # a real bug stays a 500
        raise exc.ProgrammingError("SELECT nope", {}, Exception("syntax error"))

    app.add_url_rule("/api/v1/_fault/driver", view_func=driver_error)
    app.add_url_rule("/api/v1/_fault/statement", view_func=statement_error)
    client = app.test_client()

    refused = client.post(
        "/api/v1/verify", json=verify_body(backend.code()), headers={"Authorization": f"Bearer {backend.keys['door']}"}
    )
    for response in (refused, client.get("/api/v1/_fault/driver")):
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.get_json()["error"]["code"] == "database_unavailable"
        assert int(response.headers["Retry-After"]) > 0
    response = client.get("/api/v1/_fault/statement")
    assert (response.status_code, response.get_json()["error"]["code"]) == (500, "internal_error")


# -- 1. load ------------------------------------------------------------------------------------


def test_load_over_two_instances_stores_each_decision_once(backend: Backend, servers: dict[str, Server]) -> None:
    total, clients = 400, 8
    tokens = [backend.code() for _ in range(total)]
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        mine = tokens[index::clients]
        for n, token in enumerate(mine):
            outcome = present(backend, servers["AB"[(index + n) % 2]], token)
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "a client thread did not finish"

    errors = [o for o in outcomes if o.error is not None]
    assert not errors, errors[:3]
    statuses = Counter(o.answer.status for o in outcomes if o.answer)
    assert statuses == Counter({200: total}), statuses
    assert Counter(o.answer.body["code"] for o in outcomes if o.answer) == Counter(accepted=total)
    assert Counter(o.instance for o in outcomes) == Counter(A=total // 2, B=total // 2)
    jtis = [jti_of(t) for t in tokens]
    ids = backend.usage_ids(jtis)
    assert (len(ids), len(set(ids))) == (total, total)
    assert assert_acknowledged_are_stored(backend, outcomes) == total
    print(f"\nload: {total} verifications in {elapsed:.1f} s, statuses {dict(statuses)}, {len(ids)} rows")


# -- 2. PostgreSQL restarted under traffic ----------------------------------------------------------


def pg_cluster() -> list[str]:
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        skip_or_fail("pg_ctlcluster is not available: cannot restart PostgreSQL")
    versions = sorted(os.listdir("/etc/postgresql"))
    if not versions:
        skip_or_fail("no PostgreSQL cluster in /etc/postgresql")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


class Traffic:
    """Client threads presenting fresh codes to the instances, until stopped."""

    def __init__(self, backend: Backend, targets: list[list[Server]]) -> None:
        self.backend = backend
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(servers,), daemon=True) for servers in targets]

    def run(self, servers: list[Server]) -> None:
        n = 0
        while not self.stopping.is_set():
            outcome = present(self.backend, servers[n % len(servers)], self.backend.code())
            n += 1
            with self.lock:
                self.outcomes.append(outcome)
            if outcome.error is not None:
                time.sleep(0.02)  # a refused connection: do not spin

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=CLIENT_TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in self.threads), "a client thread hung"

    def snapshot(self) -> list[Outcome]:
        with self.lock:
            return list(self.outcomes)


def test_postgresql_restart_under_traffic_fails_cleanly_and_recovers(
    backend: Backend, servers: dict[str, Server]
) -> None:
    cluster = pg_cluster()
    both = [servers["A"], servers["B"]]
    with Traffic(backend, [both, both[::-1]]) as traffic:
        time.sleep(1.0)
        restart_started = time.monotonic()
        result = subprocess.run([*cluster, "restart"], capture_output=True, text=True, timeout=90, check=False)
        restart_done = time.monotonic()
        try:
            assert result.returncode == 0, result.stdout + result.stderr
            assert pg_ready(60), "PostgreSQL did not come back"
            # Recovery: 20 successive 200s after the restart, within 30 s.
            deadline = time.monotonic() + 30
            recovered_at = None
            while time.monotonic() < deadline:
                after = [o for o in traffic.snapshot() if o.sent > restart_done]
                if len(after) >= 20 and all(o.answer is not None and o.answer.status == 200 for o in after[-20:]):
                    recovered_at = next(o.done for o in after if o.answer is not None and o.answer.status == 200)
                    break
                time.sleep(0.2)
            time.sleep(0.5)
        finally:
            pg_ready(60)
    outcomes = traffic.snapshot()
    assert recovered_at is not None, Counter(
        o.answer.status if o.answer else type(o.error).__name__ for o in outcomes[-40:]
    )

    # No hang, no exception, no 500, no HTML: a 200 or a clean 503.
    errors = [o for o in outcomes if o.error is not None]
    assert not errors, [(o.instance, repr(o.error)) for o in errors[:5]]
    assert max(o.done - o.sent for o in outcomes) < CLIENT_TIMEOUT
    statuses = Counter(o.answer.status for o in outcomes if o.answer)
    assert set(statuses) <= {200, 503}, statuses
    unavailable = [o for o in outcomes if o.answer and o.answer.status == 503]
    for outcome in unavailable:
        assert_clean_error(outcome)
    ok = [o for o in outcomes if o.answer and o.answer.status == 200]
    assert Counter(o.answer.body["code"] for o in ok) == Counter(accepted=len(ok))

    # Nothing acknowledged is lost; a refused (503) code was never half-accepted:
    # presented again now, it is accepted, or replayed if its commit got through.
    stored = assert_acknowledged_are_stored(backend, outcomes)
    before_retry = backend.usage_counts([o.jti for o in unavailable])
    for outcome in unavailable:
        again = present(backend, servers[outcome.instance], outcome.token)
        assert again.answer is not None and again.answer.status == 200, again
        expected = "replayed" if before_retry[outcome.jti] else "accepted"
        assert again.answer.body["code"] == expected, (outcome.jti, before_retry[outcome.jti], again.answer.body)

    window = (
        f"503s from {min(o.sent for o in unavailable) - restart_started:.2f} s to "
        f"{max(o.done for o in unavailable) - restart_started:.2f} s after the restart began"
        if unavailable else "no 503"
    )
    print(
        f"\npostgresql restart: {len(outcomes)} requests, statuses {dict(statuses)} ({window}), "
        f"restart took {restart_done - restart_started:.1f} s, "
        f"first 200 {recovered_at - restart_done:.2f} s after it returned, {stored} acknowledged rows stored"
    )


# -- 3. an instance killed under load -------------------------------------------------------------------


def test_an_instance_killed_under_load_loses_nothing_acknowledged(backend: Backend, servers: dict[str, Server]) -> None:
    a, b = servers["A"], servers["B"]
    try:
        with Traffic(backend, [[a, b], [b, a], [a, b], [b, a]]) as traffic:
            time.sleep(1.5)
            killed_at = time.monotonic()
            a.kill()
            time.sleep(3.0)
        outcomes = traffic.snapshot()
    finally:
        if a.process is None:
            a.start()
            a.wait_ready()

    at_b = [o for o in outcomes if o.instance == "B"]
    at_a = [o for o in outcomes if o.instance == "A"]
    assert len(at_b) > 50 and len([o for o in at_b if o.sent > killed_at]) > 20
    bad_b = [o for o in at_b if o.answer is None or o.answer.status != 200]
    assert not bad_b, [(o.answer.status if o.answer else repr(o.error)) for o in bad_b[:5]]
    # A answered 200 until it died; after that only connection errors, never a 5xx.
    assert all(o.answer is None or o.answer.status == 200 for o in at_a)
    assert not [o for o in at_a if o.sent > killed_at + 0.5 and o.answer is not None]
    stored = assert_acknowledged_are_stored(backend, outcomes)
    print(
        f"\nSIGKILL: {len(outcomes)} requests, B {len(at_b)} all 200, A {len(at_a)} "
        f"({sum(1 for o in at_a if o.answer)} answered 200, {sum(1 for o in at_a if o.error)} connection errors), "
        f"{stored} acknowledged rows stored"
    )


# -- 4. an offline verifier syncing while the service restarts ---------------------------------------------


class AckLost(Exception):
    """The service stored a batch, then died before the scanner recorded the answer."""


def test_sync_through_two_service_restarts_stores_each_record_once(
    backend: Backend, servers: dict[str, Server], tmp_path: Path
) -> None:
    b = servers["B"]
    url = f"http://127.0.0.1:{b.port}"
    key = backend.keys["gate-9"]
    total, batch = 300, 50
    with OfflineVerifier(
        KeySet.from_jwks(f"{url}/.well-known/jwks.json"), issuer=ISSUER, store=tmp_path / "s.db",
        venue_id="museum", device_id="gate-9",
    ) as verifier:
        record_ids = []
        for n in range(total):
            token = backend.code() if n % 2 else "not-a-code"
            record_ids.append(verifier.verify(token, "clinic", CLINIC).record_id)
        assert len(set(record_ids)) == total
        assert len(verifier.pending_records(10_000)) == total

        restarts: list[threading.Thread] = []
        marked = {"calls": 0}
        original = verifier.store.mark_synced

        def restart_b() -> None:
            time.sleep(0.5)  # sync() is called against the dead port meanwhile
            b.start(port=b.port)

        def mark_synced(ids: Any) -> None:
            marked["calls"] += 1
            if marked["calls"] in (2, 4) and len(restarts) < 2:
                b.kill()  # the batch is stored; its acknowledgement dies with the service
                thread = threading.Thread(target=restart_b, daemon=True)
                thread.start()
                restarts.append(thread)
                raise AckLost()
            original(ids)

        verifier.store.mark_synced = mark_synced  # type: ignore[method-assign]
        reports, lost, deadline = [], 0, time.monotonic() + 90
        try:
            while verifier.pending_records(1) and time.monotonic() < deadline:
                try:
                    reports.append(verifier.sync(url, key, batch_size=batch, timeout=5))
                except AckLost:
                    lost += 1
                time.sleep(0.05)
        finally:
            for thread in restarts:
                thread.join(timeout=STARTUP_SECONDS)
            if b.process is None or b.process.poll() is not None:
                b.start(port=b.port)
            b.wait_ready()
        assert not verifier.pending_records(1), "the outbox did not empty within 90 s"

    assert (len(restarts), lost) == (2, 2)
    uploaded = sum(r.uploaded for r in reports)
    duplicates = sum(r.duplicates for r in reports)
    failed_syncs = sum(1 for r in reports if r.errors)
    with Session(backend.engine) as session:
        rows = Counter(session.scalars(select(UsageRecord.id).where(UsageRecord.id.in_(record_ids))))
    assert len(rows) == total and set(rows.values()) == {1}, (len(rows), Counter(rows.values()))
    # The batches whose answer was lost were sent again and counted as duplicates, not stored twice.
    # (A sync() that raised AckLost returned no report: its counts are not in ``reports``.)
    assert duplicates >= batch
    print(
        f"\nsync: {total} records, {len(reports) + lost} sync calls ({failed_syncs} met the service down), "
        f"{uploaded} uploaded + {duplicates} duplicates re-sent, {len(rows)} rows, each once"
    )
