"""Issue 10, item 3: a scanner writing anything into any resident's history.

``POST /api/v1/usage`` took any ``detail`` for any ``sub``, and ``/history``
showed every member under its raw name: an upload put a phishing line and a
false venue on a resident's page. Contract section 3 now has each scene
declare its usage detail's fields; an upload is checked against them
(``invalid_usage_record`` naming the member) and a history shows only
declared fields, under the scene's own labels. One test per attack, named
``test_attack_…``, its docstring saying what the attacker sends.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import (
    EN,
    ZH,
    code_of,
    error,
    html,
    metro_scanner_key,
    record,
    row_count,
    sub_of,
    upload,
)

from codeservice import db, usage
from verifiers import Scene, SceneRegistry

PHISHING = "请致电 400-820-0000 申诉 http://appeal.example.cn/"


@pytest.fixture
def sub(logged_in: Any) -> str:
    return sub_of(code_of(logged_in))


def refused(app: Any, response: Any, field: str) -> str:
    """The upload was refused naming ``records[0].<field>``, and nothing was stored; its message."""
    body = error(response, 400, "invalid_usage_record")
    assert body["field"] == f"records[0].{field}", body
    assert body["message"].startswith(f"records[0].{field}: ")
    assert row_count(app) == 0
    return body["message"]


def test_attack_phishing_line_in_an_undeclared_member(app: Any, client: Any, key: str, sub: str) -> None:
    """Attack: a refusal 'explained' by a line the scene never logs, under a member name of the attacker's."""
    sent = record(
        sub=sub, ok=False, code="no_entry", detail={"station": "人民广场", "direction": "out", "notice": PHISHING}
    )
    message = refused(app, upload(client, key, [sent]), "detail.notice")
    assert "not a field of" in message and "station" in message  # it says what the scene does declare


def test_attack_phishing_line_as_the_member_name(app: Any, client: Any, key: str, sub: str) -> None:
    """Attack: the phishing line is the member's name, so a page labelling members by name shows it."""
    sent = record(sub=sub, detail={"station": "人民广场", "direction": "in", PHISHING: "1"})
    refused(app, upload(client, key, [sent]), f"detail.{PHISHING}")


def test_attack_a_false_venue_in_the_detail(app: Any, client: Any, key: str, sub: str) -> None:
    """Attack: a metro gate's upload claims the resident entered another venue ('场馆: demo-venue')."""
    sent = record(sub=sub, scene="venue", detail={"venue_id": "demo-venue", "party_size": 1, "reservation_id": None})
    message = refused(app, upload(client, key, [sent]), "detail.venue_id")
    assert "metro-1" in message
    # The scanner's own venue is what a venue record may say.
    honest = {**sent, "id": str(uuid.uuid4()), "detail": {**sent["detail"], "venue_id": "metro-1"}}
    assert upload(client, key, [honest]).status_code == 200


WRONG_VALUES = [
    ("transit", {"station": 5, "direction": "in"}, "station"),
    ("transit", {"station": "", "direction": "in"}, "station"),
    ("transit", {"station": "   ", "direction": "in"}, "station"),
    ("transit", {"station": "站" * 201, "direction": "in"}, "station"),
    ("transit", {"station": None, "direction": "in"}, "station"),
    ("transit", {"station": {"zh": "人民广场"}, "direction": "in"}, "station"),
    ("transit", {"station": "A", "direction": "sideways"}, "direction"),
    ("transit", {"station": "A", "direction": "IN"}, "direction"),
    ("transit", {"station": "A", "direction": "out", "fare_cents": "300"}, "fare_cents"),
    ("transit", {"station": "A", "direction": "out", "fare_cents": -1}, "fare_cents"),
    ("transit", {"station": "A", "direction": "out", "fare_cents": 3.5}, "fare_cents"),
    ("transit", {"station": "A", "direction": "out", "fare_cents": True}, "fare_cents"),
    ("transit", {"station": "A", "direction": "out", "fare_cents": 10**12}, "fare_cents"),
    ("transit", {"station": "A", "direction": "in", "trip_id": "t" * 65}, "trip_id"),
    ("clinic", {"department": "内科", "appointment_id": 7}, "appointment_id"),
    ("clinic", {"department": None}, "department"),
    ("venue", {"venue_id": "metro-1", "party_size": 0}, "party_size"),
    ("venue", {"venue_id": "metro-1", "party_size": 101}, "party_size"),
    ("venue", {"venue_id": "metro-1", "party_size": "3"}, "party_size"),
    ("venue", {"venue_id": "metro-1", "party_size": None}, "party_size"),
    ("venue", {"venue_id": "metro-1", "reservation_id": ["R-1"]}, "reservation_id"),
]


@pytest.mark.parametrize(
    ("scene", "detail", "member"), WRONG_VALUES, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(WRONG_VALUES)]
)
def test_attack_wrong_type_out_of_bounds_or_outside_the_closed_set(
    app: Any, client: Any, key: str, sub: str, scene: str, detail: dict[str, Any], member: str
) -> None:
    """Attack: a declared member holding what its scene never logs (a type, a size, a value outside its set)."""
    sent = record(sub=sub, scene=scene, ok=False, code="passback", detail=detail)
    refused(app, upload(client, key, [sent]), f"detail.{member}")


def test_attack_undeclared_member_of_another_scene(app: Any, client: Any, key: str, sub: str) -> None:
    """Attack: a transit record carrying a venue's member, which transit does not declare."""
    sent = record(sub=sub, detail={"station": "A", "direction": "in", "party_size": 4})
    refused(app, upload(client, key, [sent]), "detail.party_size")


def test_attack_detail_without_a_scene(app: Any, client: Any, key: str, sub: str) -> None:
    """Attack: a record with no scene (no declaration to check against) carrying a detail."""
    sent = record(sub=sub, scene=None, ok=False, code="unknown_scene", detail={"note": PHISHING})
    refused(app, upload(client, key, [sent]), "detail.note")
    empty = record(sub=sub, scene=None, ok=False, code="unknown_scene", detail={})
    assert upload(client, key, [empty]).status_code == 200


class Gym(Scene):
    """A third party's scene written before scenes declared their detail."""

    name = "gym"

    def parse_context(self, context: Any, visit_defaults: Any) -> Any:
        return context

    def decide(self, visit: Any, context: Any, state: Any) -> Any:
        raise NotImplementedError


@pytest.fixture
def gym_key(app: Any, runner: Any) -> str:
    """A scanner of the gym scene, installed here beside the built-in ones."""
    registry = SceneRegistry.from_entry_points()
    registry.register("gym", Gym)
    app.extensions["codeservice.scenes"] = registry
    return metro_scanner_key(runner, venue="gym-1", device="door-1", scenes="gym")


def test_attack_detail_of_a_scene_that_declares_nothing(app: Any, client: Any, gym_key: str, sub: str) -> None:
    """Attack: a record of an installed scene that declares no detail carries one (anything could be in it)."""
    sent = record(sub=sub, scene="gym", ok=False, code="gym_closed", detail={"message": PHISHING})
    message = refused(app, upload(client, gym_key, [sent]), "detail.message")
    assert "declares no detail" in message
    empty = record(sub=sub, scene="gym", ok=False, code="gym_closed", detail={})
    assert upload(client, gym_key, [empty]).status_code == 200


def test_the_details_the_scenes_emit_are_taken(app: Any, client: Any, key: str, sub: str) -> None:
    """Not an attack: every shape a built-in scene logs (accepted and refused) still uploads."""
    batch = [
        record(sub=sub, detail={"station": "A", "direction": "in", "line": None, "fare_cents": None, "trip_id": None}),
        record(sub=sub, detail={"station": "A", "direction": "in", "line": "1", "fare_cents": None, "trip_id": "Tq3x"}),
        record(sub=sub, detail={"station": "B", "direction": "out", "line": "2", "fare_cents": 0, "trip_id": "Tq3x",
                                "entry_station": "A"}),
        record(sub=sub, ok=False, code="replayed", detail={}),
        record(sub=sub, scene="clinic", detail={"department": "内科", "appointment_id": None}),
        record(sub=sub, scene="clinic", detail={"department": "内科", "appointment_id": "APT-7"}),
        record(sub=sub, scene="venue", detail={"venue_id": "metro-1", "party_size": 100, "reservation_id": "R-1"}),
    ]
    assert upload(client, key, batch).get_json() == {"accepted": len(batch), "duplicates": 0}


# -- what a history shows ----------------------------------------------------------------------


def store_directly(app: Any, sub: str, scene: str, detail: dict[str, Any], *, ok: bool = True,
                   code: str = "accepted", venue_id: str = "metro-1") -> None:
    """A record as one stored before uploads were checked (or by a scene since uninstalled) would be."""
    now = datetime.now(UTC)
    row = {
        "id": str(uuid.uuid4()), "scene": scene, "venue_id": venue_id, "device_id": "gate-7", "sub": sub,
        "jti": "legacy0jti", "decided_at": now - timedelta(minutes=5), "ok": ok, "code": code,
        "detail": json.dumps(detail), "scanner_id": None, "online": False, "received_at": now,
    }
    with app.app_context():
        usage.ingest(db.session(), [row])


def test_attack_history_shows_only_declared_fields(app: Any, logged_in: Any, sub: str) -> None:
    """Attack: a record stored before uploads were checked holds a phishing member, a false venue and
    a member of no declaration; neither the page nor the API shows them."""
    store_directly(app, sub, "venue", {"venue_id": "demo-venue", "party_size": 2, "notice": PHISHING})
    store_directly(app, sub, "transit", {"station": "人民广场", "direction": "sideways", "line": 7, PHISHING: "x"},
                   ok=False, code="passback")
    store_directly(app, sub, "gym", {"message": PHISHING}, ok=False, code="gym_closed")
    for headers in (ZH, EN):
        page = html(logged_in.get("/history", headers=headers))
        assert PHISHING not in page and "400-820" not in page and "notice" not in page and "message" not in page
        assert "demo-venue" not in page  # the place is the scanner's venue (metro-1), never the detail's
        assert "sideways" not in page
        assert "人民广场" in page  # a declared, well-formed member still shows
    api = logged_in.get("/api/v1/me/usage").get_json()["records"]
    assert sorted((r["scene"], r["detail"]) for r in api) == [
        ("gym", {}),
        ("transit", {"station": "人民广场"}),
        ("venue", {"party_size": 2}),  # a venue_id that is not the record's (the scanner's) is dropped
    ]


def test_history_labels_come_from_the_scenes_in_both_languages(client: Any, key: str, logged_in: Any, sub: str) -> None:
    batch = [
        record(sub=sub, ok=False, code="passback", detail={"station": "徐家汇", "direction": "in", "line": "9"}),
        record(sub=sub, scene="clinic", ok=False, code="already_checked_in",
               detail={"department": "内科", "appointment_id": "APT-7"}),
        record(sub=sub, scene="venue", detail={"venue_id": "metro-1", "party_size": 3, "reservation_id": "R-88"}),
    ]
    assert upload(client, key, batch).status_code == 200
    zh = html(logged_in.get("/history", headers=ZH))
    for label, value in [("车站", "徐家汇"), ("方向", "进站"), ("线路", "9"), ("科室", "内科"), ("预约号", "APT-7"),
                         ("人数", "3"), ("预约号", "R-88")]:
        assert f"<dt>{label}</dt>\n      <dd>{value}</dd>" in zh, (label, value)
    en = html(logged_in.get("/history", headers=EN))
    for label, value in [("Station", "徐家汇"), ("Direction", "Entry"), ("Line", "9"), ("Department", "内科"),
                         ("Appointment", "APT-7"), ("Party", "3"), ("Reservation", "R-88")]:
        assert f"<dt>{label}</dt>\n      <dd>{value}</dd>" in en, (label, value)
    for page in (zh, en):
        assert "venue_id" not in page and "<dt>场馆</dt>" not in page and "<dt>Venue</dt>" not in page
