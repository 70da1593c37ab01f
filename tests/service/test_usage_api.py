"""Usage records over HTTP: ``POST /api/v1/usage`` (scanners) and ``GET /api/v1/me/usage`` (residents).

On SQLite and PostgreSQL (the ``app`` fixture). Rows are counted in the
database before and after every refused upload: a refused batch writes nothing.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from helpers import (
    SUB,
    accepted,
    code_of,
    error,
    iso,
    metro_scanner_key,
    record,
    registration,
    row_count,
    sub_of,
    upload,
)

from codeservice import db, usage
from codeservice.models import UsageRecord
from verifiers import KeySet, OfflineVerifier
from verifiers.scenes.transit import TransitScene

RECORD_FIELDS = {"id", "scene", "venue_id", "device_id", "sub", "jti", "decided_at", "ok", "code", "detail"}
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(?:\d{3})?Z")


# -- helpers -------------------------------------------------------------------------


def stored(app: Any, record_id: str) -> UsageRecord:
    with app.app_context():
        row = db.session().get(UsageRecord, record_id)
        assert row is not None, record_id
        return row


def log_in_new_resident(client: Any) -> str:
    """Register and log in a resident with this client; their code id."""
    body = registration()
    assert client.post("/api/v1/residents", json=body).status_code == 201
    login = client.post("/api/v1/session", json={"phone": body["phone"], "password": body["password"]})
    assert login.status_code == 200
    return sub_of(code_of(client))


def my_usage(client: Any, **params: str) -> Any:
    return client.get("/api/v1/me/usage", query_string=params)


# -- upload: idempotency ---------------------------------------------------------------


def test_a_batch_is_accepted_and_resending_it_adds_nothing(app: Any, client: Any, key: str) -> None:
    batch = [record(timedelta(minutes=i)) for i in range(5)]
    assert accepted(upload(client, key, batch)) == (5, 0)
    assert row_count(app) == 5
    assert accepted(upload(client, key, batch)) == (0, 5)
    assert accepted(upload(client, key, list(reversed(batch)))) == (0, 5)
    assert row_count(app) == 5


def test_overlapping_batches(app: Any, client: Any, key: str) -> None:
    records = [record(timedelta(minutes=i)) for i in range(8)]
    assert accepted(upload(client, key, records[:5])) == (5, 0)
    assert accepted(upload(client, key, records[3:])) == (3, 2)
    assert accepted(upload(client, key, records)) == (0, 8)
    assert row_count(app) == 8


def test_the_same_id_twice_in_one_batch_counts_once(app: Any, client: Any, key: str) -> None:
    first = record(code="replayed", ok=False)
    again = {**first, "code": "expired"}
    other = record()
    assert accepted(upload(client, key, [first, other, again])) == (2, 1)
    assert row_count(app) == 2
    assert stored(app, first["id"]).code == "replayed"  # the first occurrence is the one kept


def test_concurrent_overlapping_uploads_store_each_record_once(app: Any, key: str) -> None:
    records = [record(timedelta(seconds=i)) for i in range(300)]
    batches = [records[:200], records[100:], records[50:250], list(reversed(records))]
    results: list[tuple[int, int]] = []
    barrier = threading.Barrier(len(batches))

    def send(batch: list[dict[str, Any]]) -> None:
        client = app.test_client()
        barrier.wait()
        results.append(accepted(upload(client, key, batch)))

    threads = [threading.Thread(target=send, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == len(batches)
    assert sum(a for a, _d in results) == 300
    assert sum(a + d for a, d in results) == sum(len(batch) for batch in batches)
    assert row_count(app) == 300


def test_an_id_is_the_same_in_any_case(app: Any, client: Any, key: str) -> None:
    lower = record()
    upper = {**lower, "id": lower["id"].upper()}
    assert accepted(upload(client, key, [upper])) == (1, 0)
    assert accepted(upload(client, key, [lower])) == (0, 1)
    assert stored(app, lower["id"]).id == lower["id"]


def test_an_empty_batch(app: Any, client: Any, key: str) -> None:
    assert accepted(upload(client, key, [])) == (0, 0)
    assert row_count(app) == 0


def test_a_full_batch_of_1000(app: Any, client: Any, key: str) -> None:
    batch = [record(timedelta(seconds=i)) for i in range(1000)]
    assert accepted(upload(client, key, batch)) == (1000, 0)
    assert accepted(upload(client, key, [*batch[500:], record()])) == (1, 500)
    assert row_count(app) == 1001


def test_over_1000_records_are_refused(app: Any, client: Any, key: str) -> None:
    body = error(upload(client, key, [record(timedelta(seconds=i)) for i in range(1001)]), 400, "batch_too_large")
    assert "1000" in body["message"]
    assert row_count(app) == 0


# -- upload: what is stored -----------------------------------------------------------------


def test_attribution_comes_from_the_key_whatever_the_record_says(app: Any, client: Any, runner: Any) -> None:
    key = metro_scanner_key(runner, venue="museum-9", device="door-2", scenes="venue")
    claimed = record(scene="venue", venue_id="somewhere-else", device_id="not-me", detail={"venue_id": "museum-9"})
    anonymous = record(scene="venue", venue_id=None, device_id=None, detail={})
    assert accepted(upload(client, key, [claimed, anonymous])) == (2, 0)
    for sent in (claimed, anonymous):
        row = stored(app, sent["id"])
        assert (row.venue_id, row.device_id) == ("museum-9", "door-2")
        assert row.scanner_id is not None and row.online is False and row.received_at is not None
    # Another scanner re-sending the same records changes nothing: the first upload's attribution stays.
    other = metro_scanner_key(runner, venue="elsewhere", device="door-9", scenes="venue")
    # (A detail naming a venue that is not the uploader's is refused, duplicate or not: contract section 3.)
    assert error(upload(client, other, [claimed]), 400, "invalid_usage_record")["field"] == "records[0].detail.venue_id"
    assert accepted(upload(client, other, [anonymous])) == (0, 1)
    assert stored(app, claimed["id"]).venue_id == "museum-9"
    assert stored(app, anonymous["id"]).venue_id == "museum-9"


def test_the_record_is_stored_as_sent(app: Any, client: Any, key: str) -> None:
    moment = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=250000)
    sent = record(decided_at=moment.isoformat(), ok=False, code="passback", detail={"station": "徐家汇"})
    assert sent["decided_at"].endswith("+00:00")
    assert accepted(upload(client, key, [sent])) == (1, 0)
    row = stored(app, sent["id"])
    assert (row.scene, row.sub, row.jti, row.ok, row.code) == ("transit", SUB, sent["jti"], False, "passback")
    assert row.detail == {"station": "徐家汇"}
    assert row.decided_at.replace(tzinfo=row.decided_at.tzinfo or UTC) == moment


def test_times_in_other_zones_are_kept_as_utc(client: Any, key: str, logged_in: Any) -> None:
    sub = sub_of(code_of(logged_in))
    moment = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=123456)
    china = record(sub=sub, decided_at=moment.astimezone(timezone(timedelta(hours=8))).isoformat())
    assert china["decided_at"].endswith("+08:00")
    assert accepted(upload(client, key, [china])) == (1, 0)
    (listed,) = my_usage(logged_in).get_json()["records"]
    assert listed["decided_at"] == moment.strftime("%Y-%m-%dT%H:%M:%S.123456Z")


# -- upload: refused batches --------------------------------------------------------------------


def without(name: str) -> dict[str, Any]:
    body = record()
    del body[name]
    return body


def deep(levels: int) -> dict[str, Any]:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return {"nested": value}


NOW_PLUS = lambda delta: iso(datetime.now(UTC) + delta)  # noqa: E731
# (case id, the bad record (built fresh per test), the field named in the error)
MALFORMED: list[tuple[str, Any, str | None]] = [
    ("not an object", lambda: "a record", None),
    ("an array", lambda: [record()], None),
    ("null", lambda: None, None),
    *[(f"no {name}", lambda name=name: without(name), name) for name in sorted(RECORD_FIELDS)],
    ("an extra member", lambda: record(online=False), "online"),
    ("id not a UUID", lambda: record(id="record-1"), "id"),
    ("id without hyphens", lambda: record(id=uuid.uuid4().hex), "id"),
    ("id in braces", lambda: record(id="{" + str(uuid.uuid4()) + "}"), "id"),
    ("id a number", lambda: record(id=12345), "id"),
    ("id null", lambda: record(id=None), "id"),
    ("scene a number", lambda: record(scene=3), "scene"),
    ("scene empty", lambda: record(scene=""), "scene"),
    ("scene not on the key", lambda: record(scene="clinic"), "scene"),
    ("scene not installed", lambda: record(scene="x" * 65), "scene"),
    ("venue_id a number", lambda: record(venue_id=7), "venue_id"),
    ("venue_id too long", lambda: record(venue_id="v" * 101), "venue_id"),
    ("device_id an array", lambda: record(device_id=["gate"]), "device_id"),
    ("sub a number", lambda: record(sub=5), "sub"),
    ("sub empty", lambda: record(sub=""), "sub"),
    ("sub with a space", lambda: record(sub="q1w2 e3r4"), "sub"),
    ("sub with NUL", lambda: record(sub="q1w2\u0000e3r4"), "sub"),
    ("sub too long", lambda: record(sub="s" * 65), "sub"),
    ("jti an object", lambda: record(jti={}), "jti"),
    ("decided_at null", lambda: record(decided_at=None), "decided_at"),
    ("decided_at a number", lambda: record(decided_at=1_795_000_000), "decided_at"),
    ("decided_at without a zone", lambda: record(decided_at="2026-11-18T11:06:40"), "decided_at"),
    ("decided_at a date", lambda: record(decided_at="2026-11-18"), "decided_at"),
    ("decided_at basic format", lambda: record(decided_at="20261118T110640Z"), "decided_at"),
    ("decided_at month 13", lambda: record(decided_at="2026-13-01T00:00:00Z"), "decided_at"),
    ("decided_at words", lambda: record(decided_at="yesterday"), "decided_at"),
    ("decided_at in the future", lambda: record(decided_at=NOW_PLUS(timedelta(minutes=10))), "decided_at"),
    ("decided_at too old", lambda: record(decided_at=NOW_PLUS(-timedelta(days=401))), "decided_at"),
    ("ok a string", lambda: record(ok="true"), "ok"),
    ("ok a number", lambda: record(ok=1), "ok"),
    ("ok null", lambda: record(ok=None), "ok"),
    ("ok true for a refusal", lambda: record(ok=True, code="expired"), "ok"),
    ("ok false for an acceptance", lambda: record(ok=False, code="accepted"), "ok"),
    ("code empty", lambda: record(code="", ok=False), "code"),
    ("code upper case", lambda: record(code="Expired", ok=False), "code"),
    ("code too long", lambda: record(code="x" * 33, ok=False), "code"),
    ("code with a dash", lambda: record(code="not-ok", ok=False), "code"),
    ("code a number", lambda: record(code=1, ok=False), "code"),
    ("detail null", lambda: record(detail=None), "detail"),
    ("detail an array", lambda: record(detail=["station"]), "detail"),
    ("detail a string", lambda: record(detail="人民广场"), "detail"),
    ("detail too large", lambda: record(detail={"note": "x" * 8200}), "detail"),
    ("detail too large in Chinese", lambda: record(detail={"note": "站" * 1400}), "detail"),
    ("detail too deep", lambda: record(detail=deep(16)), "detail"),
    ("detail far too deep", lambda: record(detail=deep(900)), "detail"),
    ("detail with NUL", lambda: record(detail={"station": "a\u0000b"}), "detail"),
]


@pytest.mark.parametrize(("make", "field"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_a_malformed_record_refuses_the_whole_batch(
    app: Any, client: Any, runner: Any, make: Any, field: str | None
) -> None:
    key = metro_scanner_key(runner, scenes="transit,venue")
    assert accepted(upload(client, key, [record()])) == (1, 0)
    before = row_count(app)
    batch = [record(), record(), make(), record()]
    body = error(upload(client, key, batch), 400, "invalid_usage_record")
    where = "records[2]" if field is None else f"records[2].{field}"
    assert body["field"] == where
    assert body["message"].startswith(where)
    assert row_count(app) == before


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")], ids=repr)
def test_numbers_json_does_not_have(app: Any, client: Any, key: str, number: float) -> None:
    # Python's json writes NaN and Infinity; the body is no JSON then, whatever record holds them.
    # Called directly, the service refuses them too (no database stores them as JSON).
    assert_no_json_body_and_no_record(app, client, key, {"fare": number})


def test_a_lone_surrogate_is_invalid_json(app: Any, client: Any, key: str) -> None:
    # JSON escapes one ("\\ud800"), but it is no UTF-8 text: the body is no strict JSON then.
    # Called directly, the service refuses it too (no UTF-8 column stores it).
    assert_no_json_body_and_no_record(app, client, key, {"station": "\ud800"})


def assert_no_json_body_and_no_record(app: Any, client: Any, key: str, detail: dict[str, Any]) -> None:
    """A batch whose second record holds ``detail`` is 400 invalid_json over HTTP, and refused by
    validate_batch called directly (naming that record's detail); nothing is stored."""
    batch = [record(), record(detail=detail)]
    error(upload(client, key, batch), 400, "invalid_json")
    assert row_count(app) == 0
    with pytest.raises(usage.InvalidUsageRecord) as refused:
        usage.validate_batch(
            batch,
            scanner_id=1,
            venue_id="v",
            device_id="d",
            scenes={"transit": TransitScene.usage_fields},
            now=datetime.now(UTC),
        )
    assert refused.value.field == "records[1].detail"


def test_the_first_bad_record_is_named(app: Any, client: Any, key: str) -> None:
    batch = [record(), record(ok="yes"), record(id="bad")]
    assert error(upload(client, key, batch), 400, "invalid_usage_record")["field"] == "records[1].ok"
    assert row_count(app) == 0


def test_a_record_just_inside_the_time_window_is_taken(client: Any, key: str) -> None:
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    batch = [
        record(decided_at=NOW_PLUS(timedelta(minutes=4))),
        record(decided_at=NOW_PLUS(-timedelta(days=399))),
        record(decided_at=two_days_ago.strftime("%Y-%m-%dt%H:%M:%Sz")),  # lower case t and z (RFC 3339 5.6)
        record(decided_at=two_days_ago.strftime("%Y-%m-%dT%H:%M:%S.123456789-05:00")),  # nanoseconds
        record(detail={"station": "🚇" * 100 + "x" * 100, "direction": "in", "line": "a backslash-u: \\u0000 \\ud800"}),
    ]
    assert accepted(upload(client, key, batch)) == (len(batch), 0)
    # A detail 16 deep or of 8000 characters is within the size limits, but no scene declares such
    # members: since contract section 3 declares each scene's detail, they are refused by name.
    for index, detail in [(0, deep(15)), (1, {"note": "x" * 8000})]:
        sent = [record(), record()]
        sent[index]["detail"] = detail
        body = error(upload(client, key, sent), 400, "invalid_usage_record")
        assert body["field"].startswith(f"records[{index}].detail."), body


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"data": "records", "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"data": json.dumps({"records": []})}, 415, "unsupported_media_type"),
        ({"data": "{", "content_type": "application/json"}, 400, "invalid_json"),
        ({"json": [{"id": "x"}]}, 400, "invalid_json"),
        ({"json": {}}, 400, "missing_field"),
        ({"json": {"records": None}}, 400, "missing_field"),
        ({"json": {"records": {"0": {}}}}, 400, "wrong_type"),
        ({"json": {"records": "[]"}}, 400, "wrong_type"),
    ],
    ids=["text", "no content type", "truncated", "a bare array", "no records", "null", "an object", "a string"],
)
def test_a_body_that_is_not_a_batch(
    app: Any, client: Any, key: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = client.post("/api/v1/usage", headers={"Authorization": f"Bearer {key}"}, **kwargs)
    error(response, status, code)
    assert row_count(app) == 0


# -- upload: who may ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer csk_not-a-key", "Basic dXNlcjpwYXNz", "csk_no_scheme"],
)
def test_no_valid_key_is_401(app: Any, client: Any, key: str, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = json.dumps({"records": [record()]})
    response = client.post("/api/v1/usage", data=body, content_type="application/json", headers=headers)
    error(response, 401, "invalid_scanner_key")
    assert row_count(app) == 0


def test_a_revoked_key_is_401(app: Any, client: Any, runner: Any) -> None:
    result = runner.invoke(args=["scanners", "add", "--venue", "v", "--device", "d", "--scenes", "transit"])
    key = result.output.strip().splitlines()[-1]
    scanner_id = re.search(r"Scanner (\d+)", result.output).group(1)
    assert accepted(upload(client, key, [record()])) == (1, 0)
    assert runner.invoke(args=["scanners", "revoke", scanner_id]).exit_code == 0
    error(upload(client, key, [record()]), 401, "invalid_scanner_key")
    assert row_count(app) == 1


def test_a_missing_key_is_401_before_the_body_is_read(client: Any) -> None:
    error(client.post("/api/v1/usage", data="not json", content_type="text/plain"), 401, "invalid_scanner_key")


# -- upload: a real offline verifier --------------------------------------------------------------


def test_records_of_a_real_offline_verifier_are_accepted_as_they_are(
    app: Any, client: Any, key: str, logged_in: Any
) -> None:
    keys = KeySet.from_jwks(client.get("/.well-known/jwks.json").get_json())
    # The verifier's venue is its key's (a venue record naming another is refused: contract section 3).
    verifier = OfflineVerifier(keys, issuer=app.config["ISSUER"], venue_id="metro-1", device_id="handheld-3")
    entry, exit_, visit = code_of(logged_in), code_of(logged_in), code_of(logged_in)
    sub = sub_of(entry)
    decisions = [
        verifier.verify(entry, "transit", {"station": "人民广场", "direction": "in", "line": "1"}),
        verifier.verify(entry, "transit", {"station": "人民广场", "direction": "in"}),  # replayed
        verifier.verify(exit_, "transit", {"station": "陆家嘴", "direction": "out"}),
        verifier.verify(visit, "venue", {"capacity": 100}),
        verifier.verify("not.a.code", "venue"),
        verifier.verify(visit, "nowhere"),
    ]
    assert [d.code for d in decisions] == ["accepted", "replayed", "accepted", "accepted", "malformed", "unknown_scene"]
    pending = verifier.pending_records()
    assert len(pending) == 6 and all(set(r) == RECORD_FIELDS | {"form"} for r in pending)
    assert accepted(upload(client, key, pending)) == (6, 0)
    assert accepted(upload(client, key, verifier.pending_records())) == (0, 6)
    listed = my_usage(logged_in).get_json()["records"]
    assert {r["id"] for r in listed} == {r["id"] for r in pending if r["sub"] == sub}
    by_id = {r["id"]: r for r in listed}
    for sent in pending:
        if sent["sub"] != sub:
            continue
        got = by_id[sent["id"]]
        assert (got["venue_id"], got["device_id"]) == ("metro-1", "gate-7")  # the key's, not the device's claim
        assert {k: got[k] for k in RECORD_FIELDS - {"venue_id", "device_id"}} == {
            k: sent[k] for k in RECORD_FIELDS - {"venue_id", "device_id"}
        }
    fare = next(r for r in listed if r["detail"].get("direction") == "out")["detail"]["fare_cents"]
    assert fare == 300


# -- history: GET /api/v1/me/usage ---------------------------------------------------------------------


def test_online_and_uploaded_records_newest_first(app: Any, client: Any, key: str, logged_in: Any) -> None:
    token = code_of(logged_in)
    sub = sub_of(token)
    older = record(timedelta(hours=3), sub=sub, scene="clinic", detail={"department": "内科", "appointment_id": None})
    assert accepted(upload(client, key, [older])) == (1, 0)
    verified = client.post(
        "/api/v1/verify",
        json={"token": token, "scene": "transit", "context": {"station": "人民广场", "direction": "in"}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert verified.status_code == 200 and verified.get_json()["code"] == "accepted"
    response = my_usage(logged_in)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"records", "next"} and body["next"] is None
    online, uploaded = body["records"]
    assert all(set(r) == RECORD_FIELDS | {"form"} and RFC3339_UTC.fullmatch(r["decided_at"]) for r in body["records"])
    assert (online["scene"], online["code"], online["ok"], online["sub"]) == ("transit", "accepted", True, sub)
    assert online["detail"]["station"] == "人民广场"
    assert (online["venue_id"], online["device_id"]) == ("metro-1", "gate-7")
    uuid.UUID(online["id"])
    assert uploaded == {**older, "venue_id": "metro-1", "device_id": "gate-7", "form": "online"}  # sent without form


def test_pages_cover_every_record_once(app: Any, client: Any, key: str, logged_in: Any) -> None:
    sub = sub_of(code_of(logged_in))
    moment = datetime.now(UTC) - timedelta(hours=1)
    # Ten records share one instant: the id orders them, and no page boundary loses one.
    batch = [record(timedelta(minutes=i), sub=sub) for i in range(50)]
    batch += [record(sub=sub, decided_at=iso(moment)) for _ in range(10)]
    batch += [record(timedelta(minutes=i), sub="someone0else000x") for i in range(5)]
    assert accepted(upload(client, key, batch)) == (65, 0)
    first = my_usage(logged_in).get_json()
    assert len(first["records"]) == 50 and first["next"]
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "7"} if cursor is None else {"limit": "7", "before": cursor}
        response = my_usage(logged_in, **params)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        assert len(page["records"]) <= 7
        seen += page["records"]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 9  # 60 records, 7 a page
    ids = [r["id"] for r in seen]
    assert len(ids) == len(set(ids)) == 60
    assert set(ids) == {r["id"] for r in batch if r["sub"] == sub}
    keys = [(r["decided_at"], r["id"]) for r in seen]
    assert keys == sorted(keys, reverse=True)
    assert my_usage(logged_in, limit="200").get_json()["next"] is None
    assert [r["id"] for r in my_usage(logged_in, limit="200").get_json()["records"]] == ids


def test_a_resident_sees_only_their_own_records(app: Any, client: Any, key: str) -> None:
    alice, bob = app.test_client(), app.test_client()
    alice_sub, bob_sub = log_in_new_resident(alice), log_in_new_resident(bob)
    batch = [record(timedelta(minutes=i), sub=alice_sub) for i in range(3)]
    batch += [record(timedelta(minutes=i), sub=bob_sub) for i in range(2)]
    batch += [record(sub=None, ok=False, code="malformed", jti=None, detail={})]
    assert accepted(upload(client, key, batch)) == (6, 0)
    alice_records = my_usage(alice).get_json()["records"]
    bob_records = my_usage(bob).get_json()["records"]
    assert len(alice_records) == 3 and {r["sub"] for r in alice_records} == {alice_sub}
    assert len(bob_records) == 2 and {r["sub"] for r in bob_records} == {bob_sub}
    # Bob holding Alice's cursor still gets only his own records.
    cursor = my_usage(alice, limit="1").get_json()["next"]
    assert {r["sub"] for r in my_usage(bob, before=cursor).get_json()["records"]} <= {bob_sub}


def test_no_records_yet(logged_in: Any) -> None:
    assert my_usage(logged_in).get_json() == {"records": [], "next": None}


def test_without_a_session_it_is_401(client: Any, key: str) -> None:
    error(my_usage(client), 401, "not_authenticated")
    # A scanner's key is no resident's session.
    error(client.get("/api/v1/me/usage", headers={"Authorization": f"Bearer {key}"}), 401, "not_authenticated")


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "", "1.5", " 5", "5 ", "1e2", "٣", "99999999999"])
def test_a_bad_limit_is_400(logged_in: Any, limit: str) -> None:
    body = error(my_usage(logged_in, limit=limit), 400, "invalid_limit")
    assert "200" in body["message"]


@pytest.mark.parametrize("limit", ["1", "200", "050"])
def test_limits_in_range(logged_in: Any, limit: str) -> None:
    assert my_usage(logged_in, limit=limit).status_code == 200


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "a",
        "not base64 at all",
        b64("garbage"),
        b64(f"1795000000000000:{uuid.uuid4()}".upper()),
        b64("1795000000000000:not-a-uuid"),
        b64(f"-5:{uuid.uuid4()}"),
        b64(f"9999999999999999999:{uuid.uuid4()}"),
        b64(f"1795000000000000:{uuid.uuid4()}") + "=",
        "A" * 500,
    ],
)
def test_a_bad_cursor_is_400(logged_in: Any, cursor: str) -> None:
    error(my_usage(logged_in, before=cursor), 400, "invalid_cursor")
