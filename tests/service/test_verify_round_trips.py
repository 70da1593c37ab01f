"""PostgreSQL: every kind of decision at /api/v1/verify in at most two round trips, commit included.

Counted by the wire, not by the code under test: libpq traces each of the
app's connections (psycopg's ``pgconn.trace``) and a round trip is one
``ReadyForQuery`` from the server, the end of its answer to each client
``Query`` (simple protocol) or ``Sync`` (extended protocol): the pool's
pings, the claim, the reads, the writes, the ``COMMIT`` and any ``ROLLBACK``
alike. The process's copy of the scanners and the revocation list is loaded
and checked before the decisions counted (it is read at most every 2 s, not
per decision: codeservice.scan_cache).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from helpers import ISSUER, LibpqTrace, service_code
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from codeservice import db, scanners, scanning
from codeservice.keystore import KeyStore
from codeservice.models import Credential, Resident
from verifiers.jose import b64url_decode, b64url_encode
from verifiers.offline_codes import device_code, mint_credential, paper_code

VERIFY = "/api/v1/verify"
CLINIC = {"department": "cardiology"}


@pytest.fixture
def database_url(postgres_schema: str) -> str:
    return postgres_schema


@pytest.fixture
def wire(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LibpqTrace]:
    """Every connection the app opens from now on, traced; the scan directory loaded and kept fresh meanwhile."""
    engine = db.engine(app)
    engine.dispose()  # the connections made so far were not traced
    traced = LibpqTrace(tmp_path / "libpq.trace")
    traced.attach(engine)
    with app.app_context(), scanning.scan_connection() as connection:
        directory = scanning.scan_directory()
        directory.fresh(connection)
        monkeypatch.setattr(directory, "max_age", 3600.0)  # no check of the version row among the decisions
    traced.since_last()
    yield traced
    traced.detach(engine)
    traced.close()


def present(client: Any, key: str, token: str, scene: str = "clinic", context: Any = CLINIC) -> dict[str, Any]:
    response = client.post(
        VERIFY, json={"token": token, "scene": scene, "context": context}, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def decided_in(wire: LibpqTrace, client: Any, key: str, token: str, *args: Any) -> tuple[str, int, list[str]]:
    wire.since_last()
    decision = present(client, key, token, *args)
    trips, sent = wire.since_last()
    return decision["code"], trips, sent


def credential(keys_dir: Path, use: str, claims: dict[Any, Any]) -> bytes:
    """A device or paper credential signed with the service's key, as the service issues them."""
    signer = KeyStore(keys_dir).signer()
    now = int(time.time())
    payload = {
        1: ISSUER, 2: "Res1dentCodeId01", 4: now + 3600, 6: now - 60, 7: secrets.token_bytes(8), "use": use,
        "scp": ["clinic", "transit", "venue"], **claims,
    }
    return mint_credential(payload, alg=signer.alg, kid=b64url_decode(signer.kid), sign=signer.sign)


class Phone:
    """A device key (P-256) and the ``cnf`` of its credential."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.cnf = {1: {1: 2, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y % 2 == 1}}

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_an_accepted_code_is_two_round_trips(app, client, keys_dir, scanner_key, wire) -> None:
    code, trips, sent = decided_in(wire, client, scanner_key, service_code(app, keys_dir))
    assert (code, trips) == ("accepted", 2), sent
    assert sent[0].startswith('"BEGIN; SELECT claimed, state_values FROM codeservice_claim_and_read(')
    assert sent[1].startswith('"WITH w0 AS (INSERT INTO scene_state') and sent[1].endswith('; COMMIT"'), sent


def test_two_state_keys_are_read_in_the_same_first_round_trip(app, client, keys_dir, scanner_key, wire) -> None:
    """The venue scene reads today's entry and the day's count: both locked and read at once."""
    code, trips, sent = decided_in(wire, client, scanner_key, service_code(app, keys_dir), "venue", {"capacity": 5})
    assert (code, trips) == ("accepted", 2), sent


@pytest.mark.parametrize(
    ("scene", "context", "refusal"),
    [("clinic", CLINIC, "already_checked_in"), ("venue", {}, "already_entered"),
     ("transit", {"station": "A", "direction": "in"}, "passback")],
)
def test_a_scenes_refusal_is_two_round_trips(app, client, keys_dir, scanner_key, wire, scene, context, refusal):
    """The claim and reads, then the ROLLBACK in front of the refusal's usage record."""
    sub = "SameResident0001"
    assert present(client, scanner_key, service_code(app, keys_dir, sub=sub), scene, context)["code"] == "accepted"
    code, trips, sent = decided_in(wire, client, scanner_key, service_code(app, keys_dir, sub=sub), scene, context)
    assert (code, trips) == (refusal, 2), sent
    assert sent[1].startswith('"ROLLBACK; INSERT INTO usage_records'), sent


def test_a_replay_is_two_round_trips(app, client, keys_dir, scanner_key, wire) -> None:
    token = service_code(app, keys_dir)
    present(client, scanner_key, token)
    code, trips, sent = decided_in(wire, client, scanner_key, token)
    assert (code, trips) == ("replayed", 2), sent


@pytest.mark.parametrize("token", ["not.a.code", "RSD1:", "RSP1:ABC"])
def test_a_code_refused_before_the_database_is_one_round_trip(client, scanner_key, wire, token) -> None:
    code, trips, sent = decided_in(wire, client, scanner_key, token)
    assert (code, trips) == ("malformed", 1), sent
    assert sent[0].startswith('"INSERT INTO usage_records'), sent


def add_resident(app: Any, code_id: str, *, revoked: bool) -> int:
    """A resident row as registration leaves it (the personal fields are not read here), revoked or not."""
    now = datetime.now(UTC)
    with db.engine(app).begin() as connection:  # the app's engine: its next decision learns of the change
        return int(connection.execute(
            Resident.__table__.insert().values(
                code_id=code_id, name="", name_encrypted=b"", id_type="passport", id_number_encrypted=b"",
                id_number_hash=secrets.token_hex(32), phone_encrypted=b"", phone_hash=secrets.token_hex(32),
                password_hash="", revoked_at=now if revoked else None, created_at=now,
            )
        ).inserted_primary_key[0])


def test_a_revoked_resident_is_refused_from_the_process_copy(app, client, keys_dir, scanner_key, wire) -> None:
    add_resident(app, "RevokedResident1", revoked=True)
    present(client, scanner_key, service_code(app, keys_dir))  # the copy is checked and loaded again here
    code, trips, sent = decided_in(wire, client, scanner_key, service_code(app, keys_dir, sub="RevokedResident1"))
    assert (code, trips) == ("revoked", 1), sent


def test_a_device_code_is_two_round_trips_accepted_and_replayed(app, client, keys_dir, scanner_key, wire) -> None:
    phone = Phone()
    token = device_code(credential(keys_dir, "device", {8: phone.cnf}), int(time.time()), phone.sign)
    code, trips, sent = decided_in(wire, client, scanner_key, token)
    assert (code, trips) == ("accepted", 2), sent
    code, trips, sent = decided_in(wire, client, scanner_key, token)
    assert (code, trips) == ("replayed", 2), sent


def test_a_paper_code_is_two_round_trips_at_a_staffed_desk(app, client, runner, keys_dir, wire) -> None:
    """No replay claim, the same first round trip: the scene's state locked and read, then the writes."""
    result = runner.invoke(args=["scanners", "add", "--venue", "v", "--device", "desk", "--scenes", "venue",
                                 "--attended"])
    desk = result.output.strip().splitlines()[-1]
    token = paper_code(credential(keys_dir, "paper", {"hint": {"n": "张*明", "i": "123X"}}))
    present(client, desk, service_code(app, keys_dir), "venue", {})  # the new key is known now
    code, trips, sent = decided_in(wire, client, desk, token, "venue", {})
    assert (code, trips) == ("accepted", 2), sent
    code, trips, sent = decided_in(wire, client, desk, token, "venue", {})
    assert (code, trips) == ("already_entered", 2), sent


def test_a_revoked_credential_is_refused_from_the_process_copy(app, client, keys_dir, scanner_key, wire) -> None:
    phone, cti = Phone(), secrets.token_bytes(8)
    issued = credential(keys_dir, "device", {7: cti, 8: phone.cnf})
    resident_id = add_resident(app, "Res1dentCodeId01", revoked=False)
    with db.engine(app).begin() as connection:
        connection.execute(
            Credential.__table__.insert().values(
                cti=b64url_encode(cti), resident_id=resident_id, use="device", issued_at=datetime.now(UTC),
                expires_at=datetime.now(UTC) + timedelta(hours=1), revoked_at=datetime.now(UTC),
            )
        )
    present(client, scanner_key, service_code(app, keys_dir))  # the copy is checked and loaded again here
    code, trips, sent = decided_in(wire, client, scanner_key, device_code(issued, int(time.time()), phone.sign))
    assert (code, trips) == ("revoked", 1), sent


def test_a_scanner_added_by_another_process_is_found_then_known(app, client, database_url, wire) -> None:
    """Added since the copy was loaded, by another engine: one lookup by its key, then known."""
    other = create_engine(database_url)
    try:
        with Session(other) as session:
            _, key = scanners.add_scanner(
                session, venue_id="late", device_id="d", scenes=["clinic"], installed=["clinic"], now=datetime.now(UTC)
            )
    finally:
        other.dispose()
    code, trips, sent = decided_in(wire, client, key, "not.a.code")
    assert (code, trips) == ("malformed", 2), sent  # the lookup of the new key, the usage record
    code, trips, sent = decided_in(wire, client, key, "not.a.code")
    assert (code, trips) == ("malformed", 1), sent


def test_a_connection_idle_in_the_pool_is_pinged_first(app, client, keys_dir, scanner_key, wire, monkeypatch) -> None:
    """Pre-ping only where a connection can have gone stale: here, idle longer than the (shortened) threshold."""
    present(client, scanner_key, service_code(app, keys_dir))
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_SECONDS", 0.0)
    code, trips, sent = decided_in(wire, client, scanner_key, service_code(app, keys_dir))
    assert (code, trips) == ("accepted", 3), sent  # the ping, then the decision's two
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_SECONDS", 3600.0)
    db.connection_lost(db.engine(app))  # another connection was found lost: every idle one is suspect
    code, trips, sent = decided_in(wire, client, scanner_key, service_code(app, keys_dir))
    assert (code, trips) == ("accepted", 3), sent
    code, trips, sent = decided_in(wire, client, scanner_key, service_code(app, keys_dir))
    assert (code, trips) == ("accepted", 2), sent  # used since: lent as it is
