"""The verify path's round trips on PostgreSQL, and what it leaves in the pool.

The scan connection runs in autocommit mode: the scanner's key and the
revocation list are the process's copy (codeservice.scan_cache, checked here
beforehand), the claim and the scene state's locked reads begin the write
transaction in one round trip and the decision's writes end it with the
COMMIT. Each round trip is one observation of the database latency metric,
so counting those counts round trips (the pool's ping on checkout is not
among them; tests/service/test_verify_round_trips.py counts the protocol's
own messages).
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import service_code
from sqlalchemy import func, select

from codeservice import db, scanning
from codeservice.models import SeenCode, UsageRecord

VERIFY = "/api/v1/verify"
CLINIC = {"department": "cardiology"}


@pytest.fixture
def database_url(postgres_schema: str) -> str:
    return postgres_schema


@pytest.fixture
def round_trips(app: Any, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    with app.app_context(), scanning.scan_connection() as connection:  # the process's copy, loaded
        directory = scanning.scan_directory()
        directory.fresh(connection)
        monkeypatch.setattr(directory, "max_age", 3600.0)  # and kept for the test
    observed: list[float] = []
    monkeypatch.setattr(scanning.observability, "database_latency", lambda: observed.append)
    return observed


def present(client: Any, scanner_key: str, token: str, context: Any = CLINIC) -> dict[str, Any]:
    body = {"token": token, "scene": "clinic", "context": context}
    response = client.post(VERIFY, json=body, headers={"Authorization": f"Bearer {scanner_key}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def count(app: Any, model: Any) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(model)) or 0


def test_an_accepted_code_costs_two_round_trips(app, client, keys_dir, scanner_key, round_trips) -> None:
    assert present(client, scanner_key, service_code(app, keys_dir))["code"] == "accepted"
    # BEGIN + claim + locked state, writes + usage + COMMIT
    assert len(round_trips) == 2
    assert count(app, UsageRecord) == 1 and count(app, SeenCode) == 1


def test_a_rejection_is_one_statement(app, client, scanner_key, round_trips) -> None:
    assert present(client, scanner_key, "not.a.code")["code"] == "malformed"
    assert len(round_trips) == 1  # the usage record in its own transaction
    assert count(app, UsageRecord) == 1


def test_a_replay_rolls_back_its_claim_and_logs_the_decision(app, client, keys_dir, scanner_key, round_trips) -> None:
    token = service_code(app, keys_dir)
    present(client, scanner_key, token)
    round_trips.clear()
    assert present(client, scanner_key, token)["code"] == "replayed"
    # BEGIN + claim (taken), ROLLBACK + the usage record
    assert len(round_trips) == 2
    assert count(app, UsageRecord) == 2 and count(app, SeenCode) == 1


def test_a_scene_failing_after_the_claim_leaves_the_code_unused(
    app, client, keys_dir, scanner_key, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = service_code(app, keys_dir)
    with monkeypatch.context() as patch:
        patch.setattr("verifiers.scenes.clinic.ClinicScene.decide", lambda *_: 1 / 0)
        assert present(client, scanner_key, token)["code"] == "bad_context"
    assert count(app, SeenCode) == 0  # the claim was rolled back with the transaction
    assert present(client, scanner_key, token)["code"] == "accepted"


def test_the_pool_gets_its_connections_back_as_it_lent_them(app, client, keys_dir, scanner_key) -> None:
    present(client, scanner_key, service_code(app, keys_dir))
    present(client, scanner_key, "not.a.code")
    engine = db.engine(app)
    connections = [engine.raw_connection() for _ in range(3)]  # the one the scans used among them
    try:
        for connection in connections:
            driver = connection.driver_connection
            assert driver.autocommit is False
            assert driver.info.transaction_status == 0  # idle
    finally:
        for connection in connections:
            connection.close()
