"""SQLite: a decision is one BEGIN IMMEDIATE transaction of prepared statements on the raw driver.

Every statement the app's connections run is traced (sqlite3's
``set_trace_callback``): a decision claims the code, reads the scene's state,
writes it and the usage record, and commits, in one write transaction; it
reads neither the scanner's key nor the revocation list (the process's copy,
codeservice.scan_cache); a refusal after the claim is rolled back and its
usage record written in a transaction of its own.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ISSUER, service_code
from sqlalchemy import event

from codeservice import db, scanning
from codeservice.keystore import KeyStore
from verifiers.jose import b64url_decode
from verifiers.offline_codes import mint_credential, paper_code

VERIFY = "/api/v1/verify"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'codeservice.db'}"


@pytest.fixture
def statements(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The statements of every connection the app opens from now on; the scan directory loaded and kept."""
    engine = db.engine(app)
    engine.dispose()
    seen: list[str] = []

    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(seen.append)

    event.listen(engine, "connect", trace)
    with app.app_context(), scanning.scan_connection() as connection:
        directory = scanning.scan_directory()
        directory.fresh(connection)
        monkeypatch.setattr(directory, "max_age", 3600.0)
    seen.clear()
    yield seen
    event.remove(engine, "connect", trace)


def decide(client: Any, key: str, token: str, scene: str = "venue", context: Any = None) -> str:
    response = client.post(VERIFY, json={"token": token, "scene": scene, "context": context or {}},
                           headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.get_json()["code"])


def verbs(statements: list[str]) -> list[str]:
    """Each statement's first words, what it does to which table; the connection's PRAGMAs left out."""
    kept = []
    for i, sql in enumerate(statements):
        words = sql.split()
        if words[0] == "PRAGMA":
            continue
        if i and statements[i - 1] == sql:
            # SQLite reports a statement again as each trigger it fires starts (sqlite3_trace_v2's
            # SQLITE_TRACE_STMT): migration 0008's roll-up trigger on usage_records, not another statement
            continue
        table = next((words[i + 1] for i, word in enumerate(words[:-1]) if word in ("INTO", "FROM", "UPDATE")), "")
        kept.append(f"{words[0]} {table}".strip())
    return kept


def test_an_accepted_code_is_one_write_transaction(app, client, keys_dir, scanner_key, statements) -> None:
    assert decide(client, scanner_key, service_code(app, keys_dir)) == "accepted"
    assert verbs(statements) == [
        "BEGIN",
        "INSERT seen_codes",  # the claim
        "SELECT scene_state",  # the venue's entry today
        "SELECT scene_state",  # and its count, both read ahead
        "INSERT scene_state",
        "INSERT scene_state",
        "INSERT usage_records",
        "COMMIT",
    ]
    assert [sql for sql in statements if sql.startswith("BEGIN")] == ["BEGIN IMMEDIATE"]


def test_a_replay_rolls_back_and_records_in_a_transaction_of_its_own(
    app, client, keys_dir, scanner_key, statements
) -> None:
    token = service_code(app, keys_dir)
    decide(client, scanner_key, token)
    statements.clear()
    assert decide(client, scanner_key, token) == "replayed"
    assert verbs(statements) == ["BEGIN", "INSERT seen_codes", "ROLLBACK", "BEGIN", "INSERT usage_records", "COMMIT"]


def test_a_paper_code_claims_nothing_and_reads_its_state_in_the_transaction(
    app, client, keys_dir, runner, statements
) -> None:
    result = runner.invoke(args=["scanners", "add", "--venue", "v", "--device", "desk", "--scenes", "venue",
                                 "--attended"])
    desk = result.output.strip().splitlines()[-1]
    decide(client, desk, "not.a.code")  # the new key is known from now on
    signer = KeyStore(keys_dir).signer()
    now = int(time.time())
    claims = {1: ISSUER, 2: "PaperResident001", 4: now + 3600, 6: now, 7: secrets.token_bytes(8), "use": "paper",
              "scp": ["venue"], "hint": {"n": "张*明", "i": "123X"}}
    token = paper_code(mint_credential(claims, alg=signer.alg, kid=b64url_decode(signer.kid), sign=signer.sign))
    statements.clear()
    assert decide(client, desk, token) == "accepted"
    assert verbs(statements) == [
        "BEGIN", "SELECT scene_state", "SELECT scene_state", "INSERT scene_state", "INSERT scene_state",
        "INSERT usage_records", "COMMIT",
    ]
    statements.clear()
    assert decide(client, desk, token) == "already_entered"
    assert verbs(statements) == [
        "BEGIN", "SELECT scene_state", "SELECT scene_state", "ROLLBACK", "BEGIN", "INSERT usage_records", "COMMIT",
    ]


def test_a_refusal_before_the_database_is_its_usage_record_alone(client, scanner_key, statements) -> None:
    assert decide(client, scanner_key, "RSD1:") == "malformed"
    assert verbs(statements) == ["BEGIN", "INSERT usage_records", "COMMIT"]
