"""POST /api/v1/verify end to end: every rule and every scene's code, through the endpoint.

Each test runs on SQLite and on PostgreSQL (the ``app`` fixture). Codes are
real ones (a resident logs in and fetches ``GET /api/v1/code``) or crafted
with the service's own signing key (``issue_code``), so that expired and
not-yet-valid codes can be made; a code signed by the conftest test key is a
key the service does not know.

A decision is a 200 whatever the token holds (``ok: false`` for a rejection)
and writes exactly one usage record, whose venue and device are the scanner
key's. A request the endpoint cannot take (no or a bad key, a body without
``token`` or ``scene``, wrong JSON types, not JSON, too large) is a 4xx in the
one error shape and writes nothing.

``unknown_scene`` cannot be reached with a key issued for installed scenes:
``scanners add`` refuses a scene that is not installed, and a scene the key
does not name is refused with 403 ``scene_not_permitted`` before any
verification. It is reached when a key names a scene whose plug-in was
uninstalled afterwards; that case is simulated by storing such a key directly.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers import add_scanner, gb11643_id, registration, service_code
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from codeservice import MAX_BODY_BYTES, db, keystore, scanners, scanning
from codeservice.extensions import KEYS
from codeservice.issuance import new_code_id
from codeservice.keystore import KeyStore
from codeservice.models import Resident, Scanner, UsageRecord
from codeservice.scanners import hash_key
from verifiers.jose import b64url_decode, b64url_encode

VERIFY = "/api/v1/verify"
DECISION_FIELDS = {"ok", "code", "scene", "form", "sub", "jti", "exp", "check_id", "detail", "message"}
SENIOR_ID_NUMBER = gb11643_id("31010419500101123")  # born 1950-01-01: a senior on any day after 2010
# A configured fare table: 10 km between these two stations is the second band.
STATIONS_KM = {"People's Square": 0.0, "Century Avenue": 10.0}
FULL_FARE = 400
ENTRY = {"station": "People's Square", "direction": "in", "line": "2"}
EXIT = {"station": "Century Avenue", "direction": "out", "line": "2"}


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    """The shared configuration, with a transit fare table that has distances."""
    return {**app_config, "SCENES": {"transit": {"fare_table": {"stations_km": STATIONS_KM}}}}


# -- helpers -------------------------------------------------------------------


def scan(client: Any, key: str | None, body: Any = None, **kwargs: Any) -> Any:
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if body is not None:  # escaped (ASCII) JSON: lone surrogates and all reach the service
        kwargs.update(data=json.dumps(body), content_type="application/json")
    return client.post(VERIFY, headers=headers, **kwargs)


def decide(client: Any, key: str, token: Any, scene: Any, context: Any = None) -> dict[str, Any]:
    """The decision for a presentation; asserts the 200 and the decision's shape."""
    body = {"token": token, "scene": scene}
    if context is not None:
        body["context"] = context
    response = scan(client, key, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    decision = response.get_json()
    assert set(decision) == DECISION_FIELDS, decision
    assert isinstance(decision["message"], str) and decision["message"]
    assert decision["ok"] is (decision["code"] == "accepted")
    return decision


def assert_error(response: Any, status: int, code: str) -> None:
    """The one error shape: ``{"error": {"code", "message"}}`` (and a ``field`` where one is named)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) - {"field"} == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[1]))


def usage_rows(app: Any) -> list[UsageRecord]:
    with Session(db.engine(app)) as session:
        return list(session.scalars(select(UsageRecord).order_by(UsageRecord.decided_at, UsageRecord.id)))


def usage_count(app: Any) -> int:
    with Session(db.engine(app)) as session:
        return session.scalar(select(func.count()).select_from(UsageRecord))


def log_in(client: Any, body: dict[str, Any]) -> None:
    response = client.post("/api/v1/session", json={"phone": body["phone"], "password": body["password"]})
    assert response.status_code == 200, response.get_json()


def register(client: Any, **overrides: Any) -> dict[str, Any]:
    body = registration(**overrides)
    response = client.post("/api/v1/residents", json=body)
    assert response.status_code == 201, response.get_json()
    return body


def live_code(client: Any) -> str:
    """A fresh real code of the logged-in resident (a new ``jti`` each call)."""
    response = client.get("/api/v1/code")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["token"]


@pytest.fixture
def code_id(app: Any, logged_in: Any) -> str:
    """The logged-in resident's ``sub``, read from the database."""
    return claims_of(live_code(logged_in))["sub"]


# -- clinic --------------------------------------------------------------------


def test_clinic_check_in_is_accepted_with_its_department(app, logged_in, code_id, scanner_key):
    token = live_code(logged_in)
    decision = decide(logged_in, scanner_key, token, "clinic", {"department": "dental"})
    claims = claims_of(token)
    assert decision == {
        "ok": True,
        "code": "accepted",
        "scene": "clinic",
        "form": "online",
        "sub": code_id,
        "jti": claims["jti"],
        "exp": claims["exp"],
        "check_id": None,
        "detail": {"department": "dental", "appointment_id": None},
        "message": decision["message"],
    }


def test_clinic_check_in_with_an_appointment_logs_its_id(logged_in, code_id, scanner_key):
    context = {"department": "cardiology", "appointments": {code_id: "APT-7", new_code_id(): "APT-8"}}
    decision = decide(logged_in, scanner_key, live_code(logged_in), "clinic", context)
    assert (decision["code"], decision["detail"]) == (
        "accepted",
        {"department": "cardiology", "appointment_id": "APT-7"},
    )


def test_clinic_no_appointment(logged_in, code_id, scanner_key):
    context = {"department": "cardiology", "appointments": {new_code_id(): "APT-8"}}
    decision = decide(logged_in, scanner_key, live_code(logged_in), "clinic", context)
    assert (decision["ok"], decision["code"]) == (False, "no_appointment")
    assert decision["detail"] == {"department": "cardiology", "appointment_id": None}
    assert decision["sub"] == code_id


def test_clinic_already_checked_in_to_the_same_department_today(logged_in, scanner_key):
    assert decide(logged_in, scanner_key, live_code(logged_in), "clinic", {"department": "dental"})["ok"]
    again = decide(logged_in, scanner_key, live_code(logged_in), "clinic", {"department": "dental"})
    assert (again["ok"], again["code"]) == (False, "already_checked_in")
    assert again["detail"] == {"department": "dental", "appointment_id": None}
    other = decide(logged_in, scanner_key, live_code(logged_in), "clinic", {"department": "eye"})
    assert other["code"] == "accepted"


def test_clinic_no_appointment_comes_before_already_checked_in(logged_in, code_id, scanner_key):
    assert decide(logged_in, scanner_key, live_code(logged_in), "clinic", {"department": "dental"})["ok"]
    context = {"department": "dental", "appointments": {}}
    assert decide(logged_in, scanner_key, live_code(logged_in), "clinic", context)["code"] == "no_appointment"


# -- transit -------------------------------------------------------------------


def test_transit_entry_opens_a_trip(app, logged_in, scanner_key):
    token = live_code(logged_in)
    decision = decide(logged_in, scanner_key, token, "transit", ENTRY)
    assert decision["code"] == "accepted"
    (entry_record,) = [row for row in usage_rows(app) if row.jti == claims_of(token)["jti"]]
    assert decision["detail"] == {
        "station": "People's Square",
        "direction": "in",
        "line": "2",
        "fare_cents": None,
        "trip_id": entry_record.id,  # the entry record's id (contract section 9), not the code's jti
    }


def test_transit_second_entry_is_passback(logged_in, scanner_key):
    first = decide(logged_in, scanner_key, live_code(logged_in), "transit", ENTRY)
    assert first["ok"]
    decision = decide(logged_in, scanner_key, live_code(logged_in), "transit", {**ENTRY, "station": "Century Avenue"})
    assert (decision["ok"], decision["code"]) == (False, "passback")
    assert decision["detail"]["trip_id"] == first["detail"]["trip_id"]
    assert decision["detail"]["station"] == "Century Avenue"


def test_transit_exit_without_entry_is_no_entry(logged_in, scanner_key):
    decision = decide(logged_in, scanner_key, live_code(logged_in), "transit", EXIT)
    assert (decision["ok"], decision["code"]) == (False, "no_entry")
    assert decision["detail"] == {
        "station": "Century Avenue",
        "direction": "out",
        "line": "2",
        "fare_cents": None,
        "trip_id": None,
    }


def test_transit_exit_closes_the_trip_with_the_fare(logged_in, scanner_key):
    entry = decide(logged_in, scanner_key, live_code(logged_in), "transit", ENTRY)
    assert entry["ok"]
    decision = decide(logged_in, scanner_key, live_code(logged_in), "transit", EXIT)
    assert decision["code"] == "accepted"
    assert decision["detail"] == {
        "station": "Century Avenue",
        "direction": "out",
        "line": "2",
        "fare_cents": FULL_FARE,
        "trip_id": entry["detail"]["trip_id"],
        "entry_station": "People's Square",
        "category": None,
    }
    # The trip is closed: exiting again is no_entry, entering again opens a new trip.
    assert decide(logged_in, scanner_key, live_code(logged_in), "transit", EXIT)["code"] == "no_entry"
    assert decide(logged_in, scanner_key, live_code(logged_in), "transit", ENTRY)["code"] == "accepted"


@pytest.mark.parametrize(
    ("kind", "category", "fare_cents"),
    [("adult", None, FULL_FARE), ("senior", "senior", 0), ("student", "student", FULL_FARE // 2)],
)
def test_transit_fare_concession_by_the_codes_category(app, client, runner, scanner_key, kind, category, fare_cents):
    if kind == "senior":  # follows from a resident ID's birth date: nobody sets it
        body = register(client, id_number=SENIOR_ID_NUMBER)
    else:
        body = register(client)
    if kind == "student":
        result = runner.invoke(args=["residents", "set-category", "--phone", body["phone"], "--category", "student"])
        assert result.exit_code == 0, result.output
    log_in(client, body)
    entry = live_code(client)
    assert claims_of(entry).get("cat") == category
    assert decide(client, scanner_key, entry, "transit", ENTRY)["ok"]
    decision = decide(client, scanner_key, live_code(client), "transit", EXIT)
    assert decision["code"] == "accepted"
    assert decision["detail"]["fare_cents"] == fare_cents


# -- venue ---------------------------------------------------------------------


def test_venue_entry_defaults_to_the_scanners_venue(logged_in, scanner_key):
    decision = decide(logged_in, scanner_key, live_code(logged_in), "venue")  # no context at all
    assert decision["code"] == "accepted"
    assert decision["detail"] == {"venue_id": "v1", "party_size": 1, "reservation_id": None}
    # An empty context names the same venue: the same resident again has already entered.
    assert decide(logged_in, scanner_key, live_code(logged_in), "venue", {})["code"] == "already_entered"


def test_venue_id_in_the_context_may_only_repeat_the_scanners(app, logged_in, scanner_key):
    decision = decide(logged_in, scanner_key, live_code(logged_in), "venue", {"venue_id": "v1"})
    assert decision["detail"] == {"venue_id": "v1", "party_size": 1, "reservation_id": None}
    assert [(r.venue_id, r.detail["venue_id"]) for r in usage_rows(app)] == [("v1", "v1")]


def test_venue_already_entered(runner, logged_in, scanner_key):
    assert decide(logged_in, scanner_key, live_code(logged_in), "venue", {})["ok"]
    decision = decide(logged_in, scanner_key, live_code(logged_in), "venue", {})
    assert (decision["ok"], decision["code"]) == (False, "already_entered")
    assert decision["detail"] == {"venue_id": "v1", "party_size": 1, "reservation_id": None}
    _, other_venue = add_scanner(runner, venue="v2", device="d2")
    assert decide(logged_in, other_venue, live_code(logged_in), "venue", {})["ok"]


def test_venue_capacity_full(app, keys_dir, client, scanner_key):
    context = {"capacity": 2}
    outcomes = [decide(client, scanner_key, service_code(app, keys_dir), "venue", context)["code"] for _ in range(3)]
    assert outcomes == ["accepted", "accepted", "capacity_full"]


# Issue 10, attack 1: a key for venue C named venue D in its context, filled
# D's daily count (D's gate then answered capacity_full) and marked residents
# already_entered at D. Attack 2: a check-in at one hospital's department
# refused the same resident at another hospital's department of that name.


def test_attack_a_scanner_cannot_name_another_venue_in_its_context(app, keys_dir, runner, client):
    _, key_c = add_scanner(runner, venue="venue-c", device="gate-c")
    _, key_d = add_scanner(runner, venue="venue-d", device="gate-d")
    resident = new_code_id()
    forged = {"venue_id": "venue-d", "reservations": {resident: {"id": "X", "party_size": 100}}}
    decision = decide(client, key_c, service_code(app, keys_dir, sub=resident), "venue", forged)
    assert (decision["ok"], decision["code"]) == (False, "bad_context")
    assert "venue_id" in decision["message"]
    # D's own gate still admits that resident, and its capacity is D's own.
    decision = decide(client, key_d, service_code(app, keys_dir, sub=resident), "venue", {"capacity": 1})
    assert (decision["code"], decision["detail"]["venue_id"]) == ("accepted", "venue-d")


def test_attack_each_venues_state_is_its_own(app, keys_dir, runner, client):
    keys = [add_scanner(runner, venue=venue, device="gate")[1] for venue in ("museum-a", "museum-b")]
    resident = new_code_id()
    for scene, context in (
        ("venue", {"capacity": 1}),
        ("clinic", {"department": "内科"}),
        ("transit", {"station": "People's Square", "direction": "in"}),
    ):
        outcomes = [decide(client, key, service_code(app, keys_dir, sub=resident), scene, context) for key in keys]
        assert [d["code"] for d in outcomes] == ["accepted", "accepted"], (scene, outcomes)


def test_attack_a_check_in_at_one_hospital_does_not_count_at_another(app, keys_dir, runner, client):
    _, first = add_scanner(runner, venue="hospital-1", device="desk", scenes="clinic")
    _, second = add_scanner(runner, venue="hospital-2", device="desk", scenes="clinic")
    resident, department = new_code_id(), {"department": "内科"}
    checks = [
        decide(client, key, service_code(app, keys_dir, sub=resident), "clinic", department)["code"]
        for key in (first, second, second)
    ]
    assert checks == ["accepted", "accepted", "already_checked_in"]


def test_venue_no_reservation_and_a_reservation(app, keys_dir, client, scanner_key):
    guest = new_code_id()
    context = {"capacity": 10, "reservations": {guest: {"id": "R-1", "party_size": 3}}}
    decision = decide(client, scanner_key, service_code(app, keys_dir), "venue", context)
    assert (decision["ok"], decision["code"]) == (False, "no_reservation")
    assert decision["detail"] == {"venue_id": "v1", "party_size": 1, "reservation_id": None, "capacity": 10}
    decision = decide(client, scanner_key, service_code(app, keys_dir, sub=guest), "venue", context)
    assert decision["code"] == "accepted"
    assert decision["detail"] == {"venue_id": "v1", "party_size": 3, "reservation_id": "R-1", "capacity": 10}


# -- the code's own rules ---------------------------------------------------------


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b.c", "x" * 5000, "é.é.é", " " * 10])
def test_malformed(client, scanner_key, token):
    decision = decide(client, scanner_key, token, "clinic", {"department": "dental"})
    assert (decision["ok"], decision["code"], decision["scene"]) == (False, "malformed", "clinic")
    assert (decision["sub"], decision["jti"], decision["exp"]) == (None, None, None)


def test_a_service_code_past_its_lifetime_is_expired(app, keys_dir, client, scanner_key):
    sub = new_code_id()
    token = service_code(app, keys_dir, sub=sub, now=int(time.time()) - 600)
    decision = decide(client, scanner_key, token, "clinic", {"department": "dental"})
    assert (decision["ok"], decision["code"], decision["sub"]) == (False, "expired", sub)


def test_a_service_code_from_the_future_is_not_yet_valid(app, keys_dir, client, scanner_key):
    token = service_code(app, keys_dir, now=int(time.time()) + 600)
    assert decide(client, scanner_key, token, "clinic", {"department": "dental"})["code"] == "not_yet_valid"


def test_a_code_within_the_leeway_is_accepted(app, keys_dir, client, scanner_key):
    token = service_code(app, keys_dir, now=int(time.time()) + 5)
    assert decide(client, scanner_key, token, "clinic", {"department": "dental"})["code"] == "accepted"


def test_the_same_code_twice_is_replayed(logged_in, scanner_key):
    token = live_code(logged_in)
    assert decide(logged_in, scanner_key, token, "venue")["code"] == "accepted"
    again = decide(logged_in, scanner_key, token, "venue")
    assert (again["ok"], again["code"], again["jti"]) == (False, "replayed", claims_of(token)["jti"])
    # Also at another scene: a code is accepted once, wherever.
    assert decide(logged_in, scanner_key, token, "clinic", {"department": "dental"})["code"] == "replayed"


def test_a_rejected_code_is_not_consumed(logged_in, scanner_key):
    token = live_code(logged_in)
    assert decide(logged_in, scanner_key, token, "transit", EXIT)["code"] == "no_entry"
    assert decide(logged_in, scanner_key, token, "transit", ENTRY)["code"] == "accepted"


def test_a_scene_the_code_does_not_name_is_scene_not_allowed(app, keys_dir, client, scanner_key):
    token = service_code(app, keys_dir, scopes=("clinic",))
    decision = decide(client, scanner_key, token, "transit", ENTRY)
    assert (decision["ok"], decision["code"]) == (False, "scene_not_allowed")
    assert decide(client, scanner_key, token, "clinic", {"department": "dental"})["code"] == "accepted"


def test_a_revoked_residents_code_is_revoked(app, logged_in, code_id, scanner_key):
    token = live_code(logged_in)  # fetched before the revocation
    with Session(db.engine(app)) as session:
        session.execute(update(Resident).where(Resident.code_id == code_id).values(revoked_at=datetime.now(UTC)))
        session.commit()
    decision = decide(logged_in, scanner_key, token, "venue")
    assert (decision["ok"], decision["code"], decision["sub"]) == (False, "revoked", code_id)


def test_a_code_signed_by_a_key_the_service_does_not_know(client, scanner_key, make_token):
    token = make_token(now=int(time.time()))
    decision = decide(client, scanner_key, token, "clinic", {"department": "dental"})
    assert (decision["ok"], decision["code"], decision["sub"]) == (False, "unknown_key", None)


def test_a_tampered_code_is_bad_signature(app, keys_dir, client, scanner_key):
    header, _claims, signature = service_code(app, keys_dir).split(".")
    other = claims_of(service_code(app, keys_dir))
    forged = f"{header}.{_b64json(other)}.{signature}"
    assert decide(client, scanner_key, forged, "venue")["code"] == "bad_signature"


def test_another_issuers_code_is_issuer_mismatch(app, keys_dir, client, scanner_key):
    token = service_code(app, keys_dir, issuer="urn:elsewhere")
    assert decide(client, scanner_key, token, "venue")["code"] == "issuer_mismatch"


def _b64json(value: Any) -> str:
    from verifiers.jose import b64url_encode, compact_json

    return b64url_encode(compact_json(value))


@pytest.mark.parametrize(
    ("scene", "context"),
    [
        ("clinic", None),
        ("clinic", {}),
        ("clinic", {"department": 5}),
        ("clinic", {"department": "dental", "appointments": ["x"]}),
        ("transit", None),
        ("transit", {"station": "People's Square"}),
        ("transit", {"station": "People's Square", "direction": "up"}),
        ("transit", {"station": "", "direction": "in"}),
        ("venue", {"capacity": 0}),
        ("venue", {"capacity": "10"}),
        ("venue", {"reservations": {"x": {"party_size": 1}}}),
    ],
)
def test_bad_context(app, keys_dir, client, scanner_key, scene, context):
    token = service_code(app, keys_dir)
    decision = decide(client, scanner_key, token, scene, context)
    assert (decision["ok"], decision["code"], decision["scene"]) == (False, "bad_context", scene)
    # Checked before the code: the code is not consumed, nothing in it is reported.
    assert (decision["sub"], decision["jti"]) == (None, None)
    good = {"clinic": {"department": "dental"}, "transit": ENTRY, "venue": {}}[scene]
    assert decide(client, scanner_key, token, scene, good)["code"] == "accepted"


@pytest.mark.parametrize(
    ("scene", "context"),
    [
        ("clinic", {"department": "x\u0000y"}),
        ("clinic", {"department": "d", "appointments": {"\u0000": "a"}}),
        ("venue", {"venue_id": "x\u0000y"}),
        ("transit", {"station": "x\u0000y", "direction": "in"}),
        ("venue", {"capacity": 10**30}),
    ],
)
def test_any_context_gives_a_decision(app, keys_dir, client, scanner_key, scene, context):
    """NUL characters, huge numbers: a decision and its usage record, never a 5xx."""
    decision = decide(client, scanner_key, service_code(app, keys_dir), scene, context)
    assert decision["code"] in {"accepted", "bad_context", "no_appointment", "no_reservation"}
    assert usage_count(app) == 1


def test_a_nul_in_a_detail_is_stored_as_u_fffd_on_postgresql(app):
    """jsonb (migration 0010) holds no NUL: a scene's detail holding one (the built-in scenes refuse a NUL in
    their context; a plug-in's may not) is stored with U+FFFD there; SQLite's JSON text keeps it."""
    with app.app_context(), scanning.scan_connection() as connection:
        stored = connection.detail_in({"station": "x\u0000y", "\u0000": ["\u0000"]})
    if db.engine(app).dialect.name == "postgresql":
        assert json.loads(stored) == {"station": "x\ufffdy", "\ufffd": ["\ufffd"]}
    else:
        assert json.loads(stored) == {"station": "x\u0000y", "\u0000": ["\u0000"]}


@pytest.mark.parametrize(
    ("scene", "context"),
    [
        ("clinic", {"department": "\ud800"}),
        ("clinic", {"department": "d", "appointments": {"\u0000": "a", "\ud800": "b"}}),
        ("venue", {"reservations": {"\ud800": {"id": "r"}}, "\ud800": 1}),
        ("transit", {"station": "a", "direction": "in", "line": "\ud800"}),
    ],
)
def test_a_lone_surrogate_is_invalid_json(app, keys_dir, client, scanner_key, scene, context):
    """JSON escapes a lone surrogate ("\\ud800"), but it is no UTF-8 text (RFC 8259 section 8.2):
    the body is refused as a whole, before any scene, and nothing is logged."""
    body = {"token": service_code(app, keys_dir), "scene": scene, "context": context}
    assert_error(scan(client, scanner_key, body), 400, "invalid_json")
    assert usage_count(app) == 0


def test_a_deeply_nested_body_is_400(client, scanner_key):
    """Nesting deep enough to exhaust the JSON parser's recursion, well within 1 MB: a 400, not a 500."""
    body = '{"token": "x", "scene": "venue", "context": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    assert_error(scan(client, scanner_key, data=body, content_type="application/json"), 400, "invalid_json")


def test_bad_context_comes_before_the_code(client, scanner_key):
    assert decide(client, scanner_key, "garbage", "transit", {})["code"] == "bad_context"


def test_a_key_for_an_uninstalled_scene_gives_unknown_scene(app, keys_dir, client):
    """A key named a scene whose plug-in has since been uninstalled: a decision, not an error."""
    key = "csk_" + uuid.uuid4().hex
    with Session(db.engine(app)) as session:
        session.add(
            Scanner(
                venue_id="v9", device_id="d9", scenes=["library", "venue"], key_hash=hash_key(key),
                key_hint=key[:8], created_at=datetime.now(UTC),
            )
        )
        session.commit()
    decision = decide(client, key, service_code(app, keys_dir), "library", {})
    assert (decision["ok"], decision["code"], decision["scene"]) == (False, "unknown_scene", None)
    [row] = usage_rows(app)
    assert (row.code, row.scene, row.venue_id, row.device_id) == ("unknown_scene", None, "v9", "d9")


@pytest.mark.parametrize("scene", ["transit", "library", "CLINIC", ""])
def test_a_scene_the_key_does_not_name_is_403(app, keys_dir, client, runner, scene):
    _, key = add_scanner(runner, scenes="clinic")
    response = scan(client, key, {"token": service_code(app, keys_dir), "scene": scene, "context": ENTRY})
    assert_error(response, 403, "scene_not_permitted")
    assert usage_count(app) == 0


# -- the service's keys: a change takes effect at the next decision -----------------
# (The verify path keeps its key set and verifiers per process: made again when the keyring changes or a
# published key's time is up, never served stale.)

DENTAL = {"department": "dental"}


def test_a_rotation_and_a_retirement_take_effect_at_the_next_decision(app, keys_dir, client, scanner_key):
    assert decide(client, scanner_key, service_code(app, keys_dir), "clinic", DENTAL)["code"] == "accepted"
    store = KeyStore(keys_dir)  # as `keys rotate` and `keys retire` would, in another process
    old_kid = store.signer().kid
    signed_before = [service_code(app, keys_dir) for _ in range(2)]
    store.rotate()
    assert decide(client, scanner_key, service_code(app, keys_dir), "clinic", DENTAL)["code"] == "accepted"
    assert decide(client, scanner_key, signed_before[0], "clinic", DENTAL)["code"] == "accepted"  # still published
    store.retire(old_kid)
    assert decide(client, scanner_key, signed_before[1], "clinic", DENTAL)["code"] == "unknown_key"


def test_a_rotated_out_key_is_unknown_once_its_publication_ends(app, keys_dir, client, scanner_key, monkeypatch):
    signed_before = [service_code(app, keys_dir) for _ in range(2)]
    KeyStore(keys_dir).rotate()
    assert decide(client, scanner_key, signed_before[0], "clinic", DENTAL)["code"] == "accepted"
    served = app.extensions[KEYS]
    old = served.keys()[0]
    assert old.state == "published" and old.published_until is not None
    monkeypatch.setattr(keystore, "_now", lambda now: old.published_until + 1 if now is None else now)
    assert [key.state for key in served.keys()] == ["expired", "signing"]
    assert decide(client, scanner_key, signed_before[1], "clinic", DENTAL)["code"] == "unknown_key"


def test_each_scanner_has_its_verifier_made_again_on_a_change_and_all_share_one_credential_cache(app, runner):
    keys = [add_scanner(runner, venue=venue)[1] for venue in ("v1", "v2")]
    with app.app_context(), scanning.scan_connection() as connection:
        directory = scanning.scan_directory()
        rows = directory.fresh(connection)
        found = [scanners.scanner_by_hash(directory, rows, connection, hash_key(key)) for key in keys]
        first, second = (scanning.verifier_for(connection, scanner, rows) for scanner in found)
        assert scanning.verifier_for(connection, found[0], rows) is first  # kept
        assert (first.venue_id, second.venue_id) == ("v1", "v2")
        assert first.credentials is second.credentials  # one bounded cache, not one per scanner
    add_scanner(runner, venue="v3")  # a change to the scanners: the process's copy is loaded again
    with app.app_context(), scanning.scan_connection() as connection:
        newer = directory.fresh(connection)
        assert newer is not rows
        again = scanners.scanner_by_hash(directory, newer, connection, hash_key(keys[0]))
        assert scanning.verifier_for(connection, again, newer) is not first  # made again, on the new copy


# -- usage records ---------------------------------------------------------------


def test_every_decision_writes_exactly_one_usage_record(app, keys_dir, logged_in, code_id, scanner_key):
    presentations = [
        (live_code(logged_in), "transit", ENTRY),  # accepted
        (live_code(logged_in), "transit", ENTRY),  # passback
        ("junk", "venue", None),  # malformed
        (service_code(app, keys_dir, now=int(time.time()) - 600), "venue", None),  # expired
        (live_code(logged_in), "clinic", {}),  # bad_context
    ]
    replay = live_code(logged_in)
    presentations += [(replay, "venue", None), (replay, "venue", None)]  # accepted, replayed
    decisions = []
    for count, (token, scene, context) in enumerate(presentations, start=1):
        body = {"token": token, "scene": scene, "context": context, "venue_id": "evil", "device_id": "evil"}
        response = scan(logged_in, scanner_key, body)
        assert response.status_code == 200
        decisions.append(response.get_json())
        assert usage_count(app) == count
    assert [d["code"] for d in decisions] == [
        "accepted", "passback", "malformed", "expired", "bad_context", "accepted", "replayed",
    ]
    rows = usage_rows(app)
    assert len(rows) == len(decisions)
    assert {(r.venue_id, r.device_id, r.online) for r in rows} == {("v1", "d1", True)}
    assert len({r.id for r in rows}) == len(rows)
    by_code = sorted((r.code, r.ok, r.scene, r.sub, r.jti, json.dumps(r.detail, sort_keys=True)) for r in rows)
    expected = sorted(
        (d["code"], d["ok"], d["scene"], d["sub"], d["jti"], json.dumps(d["detail"], sort_keys=True)) for d in decisions
    )
    assert by_code == expected
    for row in rows:
        uuid.UUID(row.id)
        assert row.decided_at.tzinfo is not None or db.engine(app).dialect.name == "sqlite"


# -- the request: the key, the body ------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token csk_x", "Bearer csk_unknown", "csk_only"],
)
def test_no_or_a_bad_scanner_key_is_401(app, keys_dir, client, scanner_key, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    body = {"token": service_code(app, keys_dir), "scene": "venue"}
    assert_error(client.post(VERIFY, json=body, headers=headers), 401, "invalid_scanner_key")
    assert usage_count(app) == 0


def test_a_revoked_scanner_key_is_401(app, keys_dir, client, runner):
    scanner_id, key = add_scanner(runner)
    body = {"token": service_code(app, keys_dir), "scene": "venue"}
    result = runner.invoke(args=["scanners", "revoke", str(scanner_id)])
    assert result.exit_code == 0, result.output
    assert_error(scan(client, key, body), 401, "invalid_scanner_key")
    assert usage_count(app) == 0


def test_the_key_is_checked_before_the_body(client):
    assert_error(client.post(VERIFY, data="nope", content_type="text/plain"), 401, "invalid_scanner_key")


@pytest.mark.parametrize(
    "body", [{"scene": "venue"}, {"token": "x"}, {}, {"token": None, "scene": "venue"}, {"token": "x", "scene": None}]
)
def test_a_body_without_token_or_scene_is_400_missing_field(app, client, scanner_key, body):
    assert_error(scan(client, scanner_key, body), 400, "missing_field")
    assert usage_count(app) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"token": 5, "scene": "venue"},
        {"token": True, "scene": "venue"},
        {"token": ["x"], "scene": "venue"},
        {"token": "x", "scene": []},
        {"token": "x", "scene": 1.5},
        {"token": "x", "scene": "venue", "context": "x"},
        {"token": "x", "scene": "venue", "context": []},
        {"token": "x", "scene": "venue", "context": 3},
    ],
)
def test_wrong_json_types_are_400_wrong_type(app, client, scanner_key, body):
    assert_error(scan(client, scanner_key, body), 400, "wrong_type")
    assert usage_count(app) == 0


@pytest.mark.parametrize("body", ["[]", '"token"', "null", "{", "{\"token\": \"x\",}"])
def test_a_json_body_that_is_not_an_object_is_400(client, scanner_key, body):
    response = scan(client, scanner_key, data=body, content_type="application/json")
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_that_is_not_json_is_415(app, client, scanner_key, content_type):
    kwargs: dict[str, Any] = {"data": '{"token": "x", "scene": "venue"}'}
    if content_type:
        kwargs["content_type"] = content_type
    assert_error(scan(client, scanner_key, **kwargs), 415, "unsupported_media_type")
    assert usage_count(app) == 0


def test_a_body_over_one_megabyte_is_413(app, client, scanner_key):
    body = json.dumps({"token": "x", "scene": "venue", "context": {"pad": "p" * MAX_BODY_BYTES}})
    assert_error(scan(client, scanner_key, data=body, content_type="application/json"), 413, "body_too_large")
    assert usage_count(app) == 0


def test_a_six_megabyte_token_meets_the_body_limit_first(app, client, scanner_key):
    assert_error(scan(client, scanner_key, {"token": "t" * (6 * 1024 * 1024), "scene": "venue"}), 413, "body_too_large")
    assert usage_count(app) == 0


def test_a_long_token_within_the_body_limit_is_malformed(app, client, scanner_key):
    decision = decide(client, scanner_key, "e" * 5000, "venue")
    assert (decision["ok"], decision["code"]) == (False, "malformed")
    assert usage_count(app) == 1


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_405(client, scanner_key, method):
    response = client.open(VERIFY, method=method, headers={"Authorization": f"Bearer {scanner_key}"})
    assert_error(response, 405, "method_not_allowed")


@pytest.mark.parametrize(
    "claim, value",
    [("sub", "q1w2e3r4\x00t5y6u7i"), ("sub", "q1w2e3r4\ud800t5y6u7i"), ("jti", "j\x00ti"), ("jti", "\udfffjti")],
)
def test_a_signed_code_whose_ids_no_database_can_hold_is_malformed(app, keys_dir, client, scanner_key, claim, value):
    # Only the issuer could sign such a code; the answer is a decision all the same, never a 500.
    signer = KeyStore(keys_dir).signer()
    now = int(time.time())
    claims = {
        "iss": app.config["ISSUER"], "sub": new_code_id(), "iat": now, "exp": now + 60, "jti": "j1", "scp": ["clinic"]
    }
    claims[claim] = value
    header = {"alg": signer.alg, "typ": "rsc+jwt", "kid": signer.kid}
    signing_input = ".".join(b64url_encode(json.dumps(part).encode("ascii")) for part in (header, claims))
    token = f"{signing_input}.{b64url_encode(signer.sign(signing_input.encode('ascii')))}"
    decision = decide(client, scanner_key, token, "clinic", {"department": "cardiology"})
    assert decision["code"] == "malformed"
    assert [row.code for row in usage_rows(app)] == ["malformed"]
