"""The revocation bound: a revoked scanner key, resident or credential is refused within 2 s, on every instance.

Each process keeps the scanners and the revocation list (codeservice.scan_cache)
and reads the version row, changed by triggers with any of them, at most every
``MAX_AGE_SECONDS``. In process, with the directory's clock in the test's hand:
a change made by another process (another engine) may go unseen for less than
the bound and is applied once it has passed, never later; a change made
through the app's own engine is applied at once. Then two gunicorn instances
(2 workers each) on one database, SQLite file and PostgreSQL: after
``scanners revoke`` and ``residents revoke`` run as a third process, every
request that starts once the bound has passed is refused at both.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import ISSUER, add_scanner, registration, service_code
from servers import Server, flask_cli, prepare_service, private_schema, request, require_gunicorn, serve
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from codeservice import db
from codeservice.extensions import SCAN_DIRECTORY
from codeservice.issuance import issue_code
from codeservice.keystore import KeyStore
from codeservice.models import Resident, ScanDirectoryVersion, Scanner
from codeservice.scan_cache import MAX_AGE_SECONDS, ScanDirectory

VERIFY = "/api/v1/verify"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app: Any) -> Clock:
    """The app's scan directory, on a clock the test moves."""
    clock = Clock()
    directory = ScanDirectory(clock=clock)
    directory.watch(db.engine(app))
    app.extensions[SCAN_DIRECTORY] = directory
    return clock


@pytest.fixture
def elsewhere(database_url: str) -> Iterator[Session]:
    """A session on the same database through another engine: what another process would change."""
    engine = create_engine(database_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def verify(client: Any, key: str, token: str) -> Any:
    """At a department of its own: a resident checks in again and again."""
    context = {"department": secrets.token_hex(4)}
    return client.post(VERIFY, json={"token": token, "scene": "clinic", "context": context},
                       headers={"Authorization": f"Bearer {key}"})


def test_a_scanner_revoked_elsewhere_is_refused_once_the_bound_has_passed(
    app, client, keys_dir, runner, clock, elsewhere
) -> None:
    scanner_id, key = add_scanner(runner)
    assert verify(client, key, service_code(app, keys_dir)).status_code == 200  # the copy, loaded
    elsewhere.execute(update(Scanner).where(Scanner.id == scanner_id).values(revoked_at=datetime.now(UTC)))
    elsewhere.commit()
    clock.now += MAX_AGE_SECONDS - 0.1  # within the bound the copy may still be used
    assert verify(client, key, service_code(app, keys_dir)).status_code == 200
    clock.now += 0.1  # the bound has passed: the version row is read, the copy loaded again
    response = verify(client, key, service_code(app, keys_dir))
    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "invalid_scanner_key")


def test_a_resident_revoked_elsewhere_is_refused_once_the_bound_has_passed(
    app, client, keys_dir, scanner_key, clock, logged_in, elsewhere
) -> None:
    code_id = elsewhere.scalars(select(Resident.code_id)).one()
    assert verify(client, scanner_key, service_code(app, keys_dir, sub=code_id)).get_json()["code"] == "accepted"
    elsewhere.execute(update(Resident).values(revoked_at=datetime.now(UTC)))
    elsewhere.commit()
    clock.now += MAX_AGE_SECONDS - 0.1
    assert verify(client, scanner_key, service_code(app, keys_dir, sub=code_id)).get_json()["code"] == "accepted"
    clock.now += 0.1
    assert verify(client, scanner_key, service_code(app, keys_dir, sub=code_id)).get_json()["code"] == "revoked"
    # And taken back: the copy follows the row both ways.
    elsewhere.execute(update(Resident).values(revoked_at=None))
    elsewhere.commit()
    clock.now += MAX_AGE_SECONDS
    assert verify(client, scanner_key, service_code(app, keys_dir, sub=code_id)).get_json()["code"] == "accepted"


def test_a_change_through_the_apps_own_engine_applies_at_once(app, client, keys_dir, runner, clock) -> None:
    """The CLI, the API, a session on the app's engine: its next decision checks, whatever the clock says."""
    scanner_id, key = add_scanner(runner)
    assert verify(client, key, service_code(app, keys_dir)).status_code == 200
    assert runner.invoke(args=["scanners", "revoke", str(scanner_id)]).exit_code == 0
    assert verify(client, key, service_code(app, keys_dir)).status_code == 401


def test_a_scanner_added_elsewhere_is_known_at_once(app, client, keys_dir, scanner_key, clock, elsewhere) -> None:
    from codeservice import scanners

    assert verify(client, scanner_key, service_code(app, keys_dir)).status_code == 200  # the copy, loaded
    _, key = scanners.add_scanner(elsewhere, venue_id="v2", device_id="d2", scenes=["clinic"], installed=["clinic"],
                                  now=datetime.now(UTC))
    assert verify(client, key, service_code(app, keys_dir)).get_json()["code"] == "accepted"


def test_the_version_row_changes_with_each_revocation_and_only_then(app, elsewhere, runner, logged_in) -> None:
    """Triggers set it, whatever writes: a registration or an unrelated update leaves it."""
    def version() -> int | None:
        elsewhere.commit()
        return elsewhere.scalars(select(ScanDirectoryVersion.version)).one_or_none()  # a test's teardown empties it

    before = version()
    elsewhere.execute(update(Resident).values(category="senior"))
    assert version() == before
    add_scanner(runner)
    after_scanner = version()
    assert after_scanner != before
    elsewhere.execute(update(Resident).values(revoked_at=datetime.now(UTC)))
    after_revocation = version()
    assert after_revocation != after_scanner


# -- two instances ----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def instances(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, dict[str, str],
                                                                                dict[str, Server]]]:
    require_gunicorn("the revocation bound tests")
    if request.param == "sqlite":
        database: contextlib.AbstractContextManager[str] = contextlib.nullcontext(f"sqlite:///{tmp_path / 'cs.db'}")
    else:
        database = private_schema("cs_bound")
    with database as database_url:
        _, env, keys = prepare_service(database_url, tmp_path, (("hall", "door", "clinic"),))
        with serve(env, tmp_path) as servers:
            yield env, tmp_path, keys, servers


def at_both(servers: dict[str, Server], key: str, codes: Callable[[], list[str]]) -> list[tuple[str, int, Any]]:
    """``codes()`` at each instance (its own), 8 at a time (so both of an instance's workers take some)."""
    results: list[tuple[str, int, Any]] = []
    lock = threading.Lock()

    def present(name: str, token: str) -> None:
        context = {"department": secrets.token_hex(4)}  # a resident checks in again and again
        answer = request(servers[name].port, "POST", VERIFY, {"token": token, "scene": "clinic", "context": context},
                         key=key)
        with lock:
            results.append((name, answer.status, answer.body))

    threads = [threading.Thread(target=present, args=(name, token)) for name in servers for token in codes()]
    for index in range(0, len(threads), 8):
        for thread in threads[index:index + 8]:
            thread.start()
        for thread in threads[index:index + 8]:
            thread.join(timeout=60)
    return results


def test_revocations_reach_every_instance_within_the_bound(instances) -> None:
    env, workdir, keys, servers = instances
    signer = KeyStore(Path(env["CODESERVICE_KEYS_DIR"])).signer()
    body = registration()
    assert request(servers["A"].port, "POST", "/api/v1/residents", body).status == 201
    engine = create_engine(env["CODESERVICE_DATABASE_URL"])
    try:
        with Session(engine) as session:
            code_id = session.scalars(select(Resident.code_id)).one()
            scanner_id = session.scalars(select(Scanner.id)).one()
    finally:
        engine.dispose()

    def codes(count: int, sub: str | None = None) -> list[str]:
        now = int(time.time())
        return [issue_code(signer, sub=sub or secrets.token_urlsafe(12), scopes=("clinic",), category=None, now=now,
                           ttl=300, issuer=ISSUER) for _ in range(count)]

    # Every worker of both instances has its copy: the resident's codes accepted.
    warm = at_both(servers, keys["door"], lambda: codes(16, code_id))
    assert {(status, answer["code"]) for _, status, answer in warm} == {(200, "accepted")}

    flask_cli(env, workdir, "residents", "revoke", "--phone", body["phone"])  # a third process
    time.sleep(MAX_AGE_SECONDS)
    refused = at_both(servers, keys["door"], lambda: codes(16, code_id))
    assert len(refused) == 32
    assert {(status, answer["code"]) for _, status, answer in refused} == {(200, "revoked")}

    assert {status for _, status, _ in at_both(servers, keys["door"], lambda: codes(8))} == {200}
    flask_cli(env, workdir, "scanners", "revoke", str(scanner_id))
    time.sleep(MAX_AGE_SECONDS)
    refused = at_both(servers, keys["door"], lambda: codes(16))
    assert len(refused) == 32
    assert {(status, answer["error"]["code"]) for _, status, answer in refused} == {(401, "invalid_scanner_key")}
