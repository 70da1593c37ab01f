"""Contract section 3: every built-in scene's rules and codes, in the table's order.

Everything goes through :meth:`OfflineVerifier.verify` with a fresh code per
presentation (each ``make_token`` call has a new ``jti``) and a fixed clock.
The verifier's day is local time, UTC+8 by default: local midnight is 16:00Z.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from helpers import ISSUER, NOW

from verifiers import OfflineVerifier, SceneRegistry, check_detail
from verifiers.store import MemoryStore

ALICE = "q1w2e3r4t5y6u7i8"  # the token factory's default sub
BOB = "Zq3xT0bL9mWc2YhE"
CAROL = "Rt6uN8pKd1sV4jQa"
DAVE = "m0Pn7VcX2bZk5LwR"

DAY = 24 * 3600
# NOW is 2026-11-18T11:06:40Z, 19:06:40 in UTC+8; that local day ends at 16:00Z.
LOCAL_MIDNIGHT = int(datetime(2026, 11, 18, 16, 0, 0, tzinfo=UTC).timestamp())
assert NOW < LOCAL_MIDNIGHT < NOW + DAY


@pytest.fixture
def make_verifier(key_set):
    """An in-memory verifier like the ``verifier`` fixture, with other options."""

    def build(**options: Any) -> OfflineVerifier:
        options = {"issuer": ISSUER, "venue_id": "museum-1", "device_id": "gate-1", **options}
        return OfflineVerifier(key_set, **options)

    return build


@pytest.fixture
def present(verifier, make_token):
    """Show a fresh code: ``present(scene, context, now=..., by=verifier, sub=..., cat=...)``."""

    def show(scene: Any, context: Any, *, now: int = NOW, by: OfflineVerifier | None = None, **claims: Any):
        return (by or verifier).verify(make_token(now=now, **claims), scene, context, now=now)

    return show


def codes(*decisions) -> list[str]:
    return [decision.code for decision in decisions]


def last_record(verifier: OfflineVerifier) -> dict[str, Any]:
    return verifier.pending_records()[-1]


# -- clinic ------------------------------------------------------------------


CARDIOLOGY = {"department": "cardiology"}


def test_clinic_check_in_logs_department_and_appointment(verifier, present):
    walk_in = present("clinic", CARDIOLOGY)
    booked = present("clinic", {"department": "dental", "appointments": {ALICE: "APT-7", BOB: "APT-8"}})

    assert (walk_in.ok, walk_in.code, walk_in.scene) == (True, "accepted", "clinic")
    assert walk_in.detail == {"department": "cardiology", "appointment_id": None}
    assert (booked.ok, booked.code) == (True, "accepted")
    assert booked.detail == {"department": "dental", "appointment_id": "APT-7"}
    record = last_record(verifier)
    assert record["id"] == booked.record_id
    assert (record["scene"], record["ok"], record["code"], record["sub"]) == ("clinic", True, "accepted", ALICE)
    assert (record["venue_id"], record["device_id"]) == ("museum-1", "gate-1")
    assert record["detail"] == {"department": "dental", "appointment_id": "APT-7"}


@pytest.mark.parametrize("appointments", [{BOB: "APT-8"}, {}], ids=["others-only", "empty"])
def test_clinic_no_appointment_where_the_clinic_supplies_them(verifier, present, appointments):
    decision = present("clinic", {"department": "dental", "appointments": appointments})

    assert (decision.ok, decision.code) == (False, "no_appointment")
    assert decision.detail == {"department": "dental", "appointment_id": None}
    assert (decision.sub, decision.scene) == (ALICE, "clinic")
    assert last_record(verifier)["code"] == "no_appointment"


def test_clinic_one_check_in_per_department_per_day(present):
    first = present("clinic", CARDIOLOGY)
    again = present("clinic", CARDIOLOGY, now=NOW + 60)
    other_department = present("clinic", {"department": "dental"}, now=NOW + 120)
    other_resident = present("clinic", CARDIOLOGY, now=NOW + 180, sub=BOB)
    next_day = present("clinic", CARDIOLOGY, now=NOW + DAY)

    assert codes(first, again, other_department, other_resident, next_day) == [
        "accepted",
        "already_checked_in",
        "accepted",
        "accepted",
        "accepted",
    ]
    assert again.detail == {"department": "cardiology", "appointment_id": None}


@pytest.mark.parametrize(
    ("scene", "context"),
    [
        ("clinic", CARDIOLOGY),
        ("transit", {"station": "People's Square", "direction": "in"}),
        ("venue", {"capacity": 1}),
    ],
)
def test_a_store_shared_by_two_venues_keeps_each_venues_state(make_verifier, present, scene, context):
    """Issue 10: two scanners of two venues on one store (as the service's database is) share no state."""
    store = MemoryStore()
    hospital_1 = make_verifier(venue_id="hospital-1", store=store)
    hospital_2 = make_verifier(venue_id="hospital-2", store=store)
    first = present(scene, context, by=hospital_1)
    elsewhere = present(scene, context, now=NOW + 1, by=hospital_2)
    again = present(scene, context, now=NOW + 2, by=hospital_2)

    refused = {"clinic": "already_checked_in", "transit": "passback", "venue": "already_entered"}[scene]
    assert codes(first, elsewhere, again) == ["accepted", "accepted", refused]


def test_clinic_day_is_the_local_day_utc_plus_8(present):
    """15:59:59Z is 23:59:59 local, still the same day; 16:00:00Z is the next one."""
    morning = present("clinic", CARDIOLOGY)
    last_second = present("clinic", CARDIOLOGY, now=LOCAL_MIDNIGHT - 1)
    new_day = present("clinic", CARDIOLOGY, now=LOCAL_MIDNIGHT)
    new_day_again = present("clinic", CARDIOLOGY, now=LOCAL_MIDNIGHT + 1)

    assert codes(morning, last_second, new_day, new_day_again) == [
        "accepted",
        "already_checked_in",
        "accepted",
        "already_checked_in",
    ]


def test_clinic_day_follows_the_configured_time_zone(make_verifier, present):
    """With tz=UTC the day turns at 00:00Z, and 16:00Z is the same day."""
    utc = make_verifier(tz=UTC)
    morning = present("clinic", CARDIOLOGY, by=utc)
    after_cst_midnight = present("clinic", CARDIOLOGY, by=utc, now=LOCAL_MIDNIGHT)
    utc_midnight = LOCAL_MIDNIGHT + 8 * 3600
    new_utc_day = present("clinic", CARDIOLOGY, by=utc, now=utc_midnight)

    assert codes(morning, after_cst_midnight, new_utc_day) == ["accepted", "already_checked_in", "accepted"]


def test_clinic_no_appointment_is_checked_before_already_checked_in(present):
    present("clinic", {"department": "dental", "appointments": {ALICE: "APT-7"}})
    both_fail = present("clinic", {"department": "dental", "appointments": {BOB: "APT-8"}}, now=NOW + 60)

    assert both_fail.code == "no_appointment"


def test_clinic_rejected_check_in_does_not_count(present):
    refused = present("clinic", {"department": "dental", "appointments": {}})
    walk_in = present("clinic", {"department": "dental"}, now=NOW + 60)

    assert codes(refused, walk_in) == ["no_appointment", "accepted"]


# -- transit -----------------------------------------------------------------


STATIONS_KM = {"A": 0.0, "B": 5.0, "C": 6.0, "D": 6.5, "E": 16.0, "F": 17.0, "G": 26.0, "H": 27.0}


def gate(station: str, direction: str, **extra: Any) -> dict[str, Any]:
    return {"station": station, "direction": direction, **extra}


def test_transit_entry_opens_a_trip(verifier, present, transit_in):
    entry = present("transit", transit_in)

    assert (entry.ok, entry.code, entry.scene) == (True, "accepted", "transit")
    assert entry.detail["station"] == "人民广场"
    assert entry.detail["direction"] == "in"
    assert entry.detail["fare_cents"] is None
    assert entry.detail["trip_id"] == entry.record_id
    assert last_record(verifier)["detail"] == entry.detail


def test_transit_second_entry_while_a_trip_is_open_is_passback(present, transit_in):
    entry = present("transit", transit_in)
    passback = present("transit", gate("徐家汇", "in"), now=NOW + 60)
    other_resident = present("transit", transit_in, now=NOW + 60, sub=BOB)

    assert codes(entry, passback, other_resident) == ["accepted", "passback", "accepted"]
    assert passback.detail["trip_id"] == entry.record_id
    assert (passback.detail["station"], passback.detail["direction"]) == ("徐家汇", "in")


def test_transit_exit_without_an_open_trip_is_no_entry(verifier, present):
    decision = present("transit", gate("A", "out"))

    assert (decision.ok, decision.code) == (False, "no_entry")
    assert decision.detail["station"] == "A"
    assert decision.detail["direction"] == "out"
    assert decision.detail["fare_cents"] is None
    assert decision.detail["trip_id"] is None
    assert last_record(verifier)["code"] == "no_entry"


def test_transit_exit_closes_the_trip(present, transit_in):
    entry = present("transit", transit_in)
    exit_ = present("transit", gate("徐家汇", "out"), now=NOW + 600)
    second_exit = present("transit", gate("徐家汇", "out"), now=NOW + 660)
    next_entry = present("transit", gate("徐家汇", "in"), now=NOW + 720)

    assert codes(entry, exit_, second_exit, next_entry) == ["accepted", "accepted", "no_entry", "accepted"]
    assert exit_.detail["trip_id"] == entry.record_id
    assert exit_.detail["direction"] == "out"
    assert exit_.detail["station"] == "徐家汇"
    assert isinstance(exit_.detail["fare_cents"], int)
    assert next_entry.detail["trip_id"] == next_entry.record_id


def test_transit_replay_is_checked_before_passback(verifier, make_token, transit_in):
    token = make_token()
    first = verifier.verify(token, "transit", transit_in, now=NOW)
    again = verifier.verify(token, "transit", transit_in, now=NOW + 1)

    assert codes(first, again) == ["accepted", "replayed"]


@pytest.mark.parametrize(
    ("to_station", "fare_cents"),
    [
        ("A", 300),  # 0 km
        ("B", 300),  # 5 km
        ("C", 300),  # 6 km: the first band's limit is inclusive
        ("D", 400),  # 6.5 km
        ("E", 400),  # 16 km
        ("F", 500),  # 17 km: 1 km beyond the last band starts 10 km more
        ("G", 500),  # 26 km
        ("H", 600),  # 27 km
    ],
)
def test_transit_fare_from_the_configured_distance_bands(make_verifier, present, to_station, fare_cents):
    transit = make_verifier(scene_config={"transit": {"fare_table": {"stations_km": STATIONS_KM}}})
    present("transit", gate("A", "in"), by=transit)
    exit_ = present("transit", gate(to_station, "out"), by=transit, now=NOW + 600)

    assert exit_.code == "accepted"
    assert exit_.detail["fare_cents"] == fare_cents


def test_transit_fare_is_symmetric(make_verifier, present):
    transit = make_verifier(scene_config={"transit": {"fare_table": {"stations_km": STATIONS_KM}}})
    present("transit", gate("H", "in"), by=transit)

    assert present("transit", gate("A", "out"), by=transit, now=NOW + 600).detail["fare_cents"] == 600


def test_transit_fare_with_configured_bands_and_extra(make_verifier, present):
    table = {
        "bands": [[3, 200], [10, 350]],
        "extra_km": 5,
        "extra_cents": 50,
        "stations_km": {"X": 0, "Y": 3, "Z": 10, "W": 21},
    }
    transit = make_verifier(scene_config={"transit": {"fare_table": table}})
    fares = {}
    for minute, station in enumerate(["Y", "Z", "W"]):
        start = NOW + minute * 600
        present("transit", gate("X", "in"), by=transit, now=start)
        fares[station] = present("transit", gate(station, "out"), by=transit, now=start + 300).detail["fare_cents"]

    assert fares == {"Y": 200, "Z": 350, "W": 350 + 3 * 50}


def test_transit_unknown_stations_pay_the_first_band(make_verifier, present):
    transit = make_verifier(scene_config={"transit": {"fare_table": {"stations_km": STATIONS_KM}}})
    present("transit", gate("A", "in"), by=transit)

    assert present("transit", gate("Nowhere", "out"), by=transit, now=NOW + 600).detail["fare_cents"] == 300


@pytest.mark.parametrize(
    ("category", "fare_cents"),
    [(None, 500), ("senior", 0), ("disabled", 0), ("student", 250), ("child", 250)],
)
def test_transit_concessions_by_category(make_verifier, present, category, fare_cents):
    transit = make_verifier(scene_config={"transit": {"fare_table": {"stations_km": STATIONS_KM}}})
    claims = {} if category is None else {"cat": category}
    present("transit", gate("A", "in"), by=transit, **claims)
    exit_ = present("transit", gate("G", "out"), by=transit, now=NOW + 600, **claims)

    assert exit_.code == "accepted"
    assert exit_.detail["fare_cents"] == fare_cents


def test_transit_concessions_are_configurable(make_verifier, present):
    config = {"fare_table": {"stations_km": STATIONS_KM}, "concessions": {"student": 80}}
    transit = make_verifier(scene_config={"transit": config})
    present("transit", gate("A", "in"), by=transit, cat="student")
    student = present("transit", gate("G", "out"), by=transit, now=NOW + 600, cat="student")
    present("transit", gate("A", "in"), by=transit, now=NOW + 700, cat="senior")
    senior = present("transit", gate("G", "out"), by=transit, now=NOW + 800, cat="senior")

    assert (student.detail["fare_cents"], senior.detail["fare_cents"]) == (400, 500)


def test_transit_open_trip_expires_after_max_trip_seconds(make_verifier, present):
    transit = make_verifier(scene_config={"transit": {"max_trip_seconds": 600}})
    entry = present("transit", gate("A", "in"), by=transit)
    at_limit = present("transit", gate("B", "in"), by=transit, now=NOW + 600)
    after = present("transit", gate("B", "in"), by=transit, now=NOW + 601)

    assert codes(entry, at_limit, after) == ["accepted", "passback", "accepted"]
    assert after.detail["trip_id"] == after.record_id


def test_transit_exit_after_the_trip_expired_is_no_entry(make_verifier, present):
    transit = make_verifier(scene_config={"transit": {"max_trip_seconds": 600}})
    present("transit", gate("A", "in"), by=transit)

    assert present("transit", gate("B", "out"), by=transit, now=NOW + 601).code == "no_entry"


def test_transit_default_trip_lasts_four_hours(present):
    present("transit", gate("A", "in"))
    still_open = present("transit", gate("B", "in"), now=NOW + 4 * 3600)
    expired = present("transit", gate("B", "in"), now=NOW + 4 * 3600 + 1)

    assert codes(still_open, expired) == ["passback", "accepted"]


def test_transit_optional_line_is_logged(present):
    entry = present("transit", gate("A", "in", line="2"))
    without = present("transit", gate("B", "in"), sub=BOB)

    assert (entry.detail["line"], without.detail["line"]) == ("2", None)


# -- venue -------------------------------------------------------------------


def test_venue_entry_uses_the_scanners_venue_by_default(verifier, present):
    decision = present("venue", {})

    assert (decision.ok, decision.code, decision.scene) == (True, "accepted", "venue")
    assert decision.detail == {"venue_id": "museum-1", "party_size": 1, "reservation_id": None}
    assert last_record(verifier)["detail"] == decision.detail


def test_venue_omitted_context_is_an_empty_one(present):
    assert present("venue", None).code == "accepted"


def test_venue_id_from_the_context_must_be_the_scanners(present):
    """Contract section 3 (issue 10): the venue is the scanner's; a context cannot name another one."""
    other = present("venue", {"venue_id": "library-2"})
    same = present("venue", {"venue_id": "museum-1"}, now=NOW + 1)

    assert codes(other, same) == ["bad_context", "accepted"]
    assert "venue_id" in other.message
    assert same.detail["venue_id"] == "museum-1"


def test_venue_id_from_the_context_where_the_scanner_has_none(make_verifier, present):
    roaming = make_verifier(venue_id=None)
    with_venue = present("venue", {"venue_id": "library-2"}, by=roaming)
    without = present("venue", {}, by=roaming, sub=BOB)

    assert codes(with_venue, without) == ["accepted", "bad_context"]


def test_venue_one_entry_per_venue_per_day(make_verifier, present):
    roaming = make_verifier(venue_id=None)  # the context names the venue
    museum, library = {"venue_id": "museum-1"}, {"venue_id": "library-2"}
    first = present("venue", museum, by=roaming)
    again = present("venue", museum, now=NOW + 60, by=roaming)
    other_venue = present("venue", library, now=NOW + 120, by=roaming)
    other_resident = present("venue", museum, now=NOW + 180, sub=BOB, by=roaming)
    last_second = present("venue", museum, now=LOCAL_MIDNIGHT - 1, by=roaming)
    next_day = present("venue", museum, now=LOCAL_MIDNIGHT, by=roaming)

    assert codes(first, again, other_venue, other_resident, last_second, next_day) == [
        "accepted",
        "already_entered",
        "accepted",
        "accepted",
        "already_entered",
        "accepted",
    ]
    assert again.detail == {"venue_id": "museum-1", "party_size": 1, "reservation_id": None}


def test_venue_capacity_full(present):
    context = {"capacity": 2}
    decisions = [present("venue", context, now=NOW + i, sub=sub) for i, sub in enumerate([ALICE, BOB, CAROL])]

    assert codes(*decisions) == ["accepted", "accepted", "capacity_full"]
    # The capacity checked against is logged, for the console's capacity use.
    assert decisions[2].detail == {"venue_id": "museum-1", "party_size": 1, "reservation_id": None, "capacity": 2}


def test_venue_capacity_counts_people_not_codes(present):
    context = {
        "capacity": 5,
        "reservations": {
            ALICE: {"id": "R-1", "party_size": 3},
            BOB: {"id": "R-2", "party_size": 3},
            CAROL: {"id": "R-3", "party_size": 2},
        },
    }
    alice = present("venue", context, sub=ALICE)
    bob = present("venue", context, now=NOW + 1, sub=BOB)
    carol = present("venue", context, now=NOW + 2, sub=CAROL)

    assert codes(alice, bob, carol) == ["accepted", "capacity_full", "accepted"]
    assert alice.detail == {"venue_id": "museum-1", "party_size": 3, "reservation_id": "R-1", "capacity": 5}
    assert bob.detail == {"venue_id": "museum-1", "party_size": 3, "reservation_id": "R-2", "capacity": 5}


def test_venue_capacity_is_per_venue_and_per_day(make_verifier, present):
    roaming = make_verifier(venue_id=None)
    full = {"capacity": 1, "venue_id": "museum-1"}
    first = present("venue", full, by=roaming)
    elsewhere = present("venue", {"capacity": 1, "venue_id": "library-2"}, now=NOW + 1, sub=BOB, by=roaming)
    same_venue = present("venue", full, now=NOW + 2, sub=BOB, by=roaming)
    next_day = present("venue", full, now=LOCAL_MIDNIGHT, sub=BOB, by=roaming)

    assert codes(first, elsewhere, same_venue, next_day) == ["accepted", "accepted", "capacity_full", "accepted"]


def test_venue_no_reservation(verifier, present):
    decision = present("venue", {"reservations": {BOB: {"id": "R-2", "party_size": 2}}})

    assert (decision.ok, decision.code) == (False, "no_reservation")
    assert decision.detail == {"venue_id": "museum-1", "party_size": 1, "reservation_id": None}
    assert last_record(verifier)["code"] == "no_reservation"


def test_venue_reservation_party_size_defaults_to_one(present):
    decision = present("venue", {"reservations": {ALICE: {"id": "R-1"}}})

    assert decision.code == "accepted"
    assert decision.detail == {"venue_id": "museum-1", "party_size": 1, "reservation_id": "R-1"}


def test_venue_already_entered_is_checked_before_capacity_full(present):
    context = {"capacity": 1}
    first = present("venue", context)
    both_fail = present("venue", context, now=NOW + 60)

    assert codes(first, both_fail) == ["accepted", "already_entered"]


def test_venue_capacity_full_is_checked_before_no_reservation(present):
    context = {"capacity": 1, "reservations": {ALICE: {"id": "R-1", "party_size": 1}}}
    alice = present("venue", context)
    bob_without_reservation = present("venue", context, now=NOW + 1, sub=BOB)

    assert codes(alice, bob_without_reservation) == ["accepted", "capacity_full"]


def test_venue_refused_entries_do_not_use_capacity(present):
    context = {"capacity": 2, "reservations": {ALICE: {"id": "R-1", "party_size": 2}}}
    bob = present("venue", context, sub=BOB)
    alice = present("venue", context, now=NOW + 1)
    bob_again = present("venue", {}, now=NOW + 2, sub=BOB)

    assert codes(bob, alice, bob_again) == ["no_reservation", "accepted", "accepted"]


# -- bad_context and unknown_scene, checked before the code itself -------------


BAD_CONTEXTS = [
    ("clinic", {}),
    ("clinic", {"department": 5}),
    ("clinic", {"department": ""}),
    ("clinic", {"department": "   "}),
    ("clinic", {"department": None}),
    ("clinic", {"department": ["cardiology"]}),
    ("clinic", {"department": "x" * 201}),
    ("clinic", {"department": "dental", "appointments": [ALICE]}),
    ("clinic", {"department": "dental", "appointments": {ALICE: 7}}),
    ("clinic", {"department": "dental", "appointments": {ALICE: ""}}),
    ("clinic", {"department": "dental", "appointments": "APT-7"}),
    ("transit", {}),
    ("transit", {"station": "A"}),
    ("transit", {"direction": "in"}),
    ("transit", {"station": "A", "direction": "sideways"}),
    ("transit", {"station": "A", "direction": "IN"}),
    ("transit", {"station": "A", "direction": True}),
    ("transit", {"station": 5, "direction": "in"}),
    ("transit", {"station": "", "direction": "out"}),
    ("transit", {"station": "A", "direction": "in", "line": 1}),
    ("venue", {"venue_id": 5}),
    ("venue", {"venue_id": ""}),
    ("venue", {"capacity": "10"}),
    ("venue", {"capacity": True}),
    ("venue", {"capacity": 0}),
    ("venue", {"capacity": -1}),
    ("venue", {"capacity": 10.0}),
    ("venue", {"reservations": []}),
    ("venue", {"reservations": [ALICE]}),
    ("venue", {"reservations": {ALICE: "R-1"}}),
    ("venue", {"reservations": {ALICE: {"id": "R-1", "party_size": 0}}}),
    ("venue", {"reservations": {ALICE: {"id": "R-1", "party_size": -2}}}),
    ("venue", {"reservations": {ALICE: {"id": "R-1", "party_size": "2"}}}),
    ("venue", {"reservations": {ALICE: {"id": "R-1", "party_size": True}}}),
    ("venue", {"reservations": {ALICE: {"id": "R-1", "party_size": 101}}}),
    ("venue", {"reservations": {ALICE: {"party_size": 2}}}),
    ("venue", {"reservations": {ALICE: {"id": 1, "party_size": 2}}}),
]


@pytest.mark.parametrize(("scene", "context"), BAD_CONTEXTS)
def test_bad_context(verifier, present, scene, context):
    decision = present(scene, context)

    assert (decision.ok, decision.code, decision.scene) == (False, "bad_context", scene)
    assert decision.message
    assert last_record(verifier)["code"] == "bad_context"


@pytest.mark.parametrize("scene", ["clinic", "transit", "venue"])
@pytest.mark.parametrize("context", [[], ["department"], "department=dental", 5, True, 1.5])
def test_non_object_context_is_bad_context(present, scene, context):
    decision = present(scene, context)

    assert (decision.ok, decision.code) == (False, "bad_context")


@pytest.mark.parametrize("scene", ["clinic", "transit"])
def test_omitted_context_is_bad_context_where_fields_are_required(present, scene):
    assert present(scene, None).code == "bad_context"


@pytest.mark.parametrize(("scene", "context"), [("clinic", {"department": 5}), ("transit", {"direction": "sideways"})])
def test_bad_context_is_checked_before_the_code(verifier, scene, context):
    decision = verifier.verify("not-a-code", scene, context, now=NOW)

    assert decision.code == "bad_context"
    assert (decision.sub, decision.jti) == (None, None)


def test_bad_context_does_not_use_up_the_code(verifier, make_token):
    token = make_token()
    refused = verifier.verify(token, "transit", {"station": "A", "direction": "sideways"}, now=NOW)
    fixed = verifier.verify(token, "transit", {"station": "A", "direction": "in"}, now=NOW)

    assert codes(refused, fixed) == ["bad_context", "accepted"]


@pytest.mark.parametrize("scene", ["library", "Clinic", "", " transit", 5, None, ["transit"]])
def test_unknown_scene(verifier, present, scene):
    decision = present(scene, {"department": "dental"})

    assert (decision.ok, decision.code, decision.scene) == (False, "unknown_scene", None)
    assert last_record(verifier)["code"] == "unknown_scene"


def test_unknown_scene_is_checked_before_context_and_code(verifier):
    decision = verifier.verify("not-a-code", "library", ["not", "a", "context"], now=NOW)

    assert decision.code == "unknown_scene"


def test_scene_rules_come_after_the_codes_own_rules(present):
    """Rule 5 (scene_not_allowed) comes before the scene's own rules (rule 8)."""
    decision = present("transit", gate("A", "out"), scp=["clinic"])

    assert decision.code == "scene_not_allowed"


# -- each scene's usage detail meets its own declaration (contract section 3) ---------------------


def every_outcome(present, make_verifier) -> list:
    """A decision with every code each built-in scene gives (accepted ones of every shape, each refusal)."""
    full = {"capacity": 1}
    stations = make_verifier(scene_config={"transit": {"fare_table": {"stations_km": {"A": 0.0, "Z": 90.0}}}})
    return [
        present("clinic", CARDIOLOGY),
        present("clinic", CARDIOLOGY),  # already_checked_in
        present("clinic", {"department": "dental", "appointments": {ALICE: "APT-7"}}),
        present("clinic", {"department": "dental", "appointments": {BOB: "APT-8"}}),  # no_appointment
        present("transit", gate("A", "in", line="1")),
        present("transit", gate("A", "in")),  # passback
        present("transit", gate("B", "out")),
        present("transit", gate("B", "out")),  # no_entry
        present("transit", gate("A", "in"), by=stations, sub=BOB),
        present("transit", gate("Z", "out", line="2"), by=stations, sub=BOB),  # the fare beyond the bands
        present("transit", gate("A", "in"), sub=CAROL, cat="senior"),
        present("transit", gate("B", "out"), sub=CAROL, cat="senior"),  # a fare of 0
        present("venue", {}),
        present("venue", {}),  # already_entered
        present("venue", {"reservations": {BOB: {"id": "R-2", "party_size": 100}}}, sub=BOB),
        present("venue", full, sub=CAROL),  # capacity_full
        present("venue", {"reservations": {BOB: {"id": "R-2"}}}, sub=DAVE),  # no_reservation
        present("transit", {"station": "A"}),  # bad_context: an empty detail
        present("clinic", CARDIOLOGY, scp=["transit"]),  # scene_not_allowed: an empty detail
    ]


def test_every_detail_a_scene_logs_meets_its_declaration(verifier, present, make_verifier):
    registry = SceneRegistry.from_entry_points()
    decisions = every_outcome(present, make_verifier)
    assert set(codes(*decisions)) == {
        "accepted", "already_checked_in", "no_appointment", "passback", "no_entry", "already_entered",
        "capacity_full", "no_reservation", "bad_context", "scene_not_allowed",
    }
    fares = [d.detail.get("fare_cents") for d in decisions if d.detail.get("direction") == "out" and d.ok]
    assert fares == [300, 1200, 0]
    for decision in decisions:
        fields = registry.usage_fields(decision.scene)
        assert fields, decision.scene
        check_detail(fields, decision.detail)  # raises InvalidDetail naming the member otherwise
        assert set(decision.detail) <= {field.name for field in fields}


@pytest.mark.parametrize("scene", ["clinic", "transit", "venue"])
def test_every_declared_field_is_labelled_in_both_languages(scene):
    for field in SceneRegistry.from_entry_points().usage_fields(scene):
        assert set(field.labels) == {"zh", "en"} and all(field.labels.values()), (scene, field.name)
        for value, labels in (field.choices or {}).items():
            assert set(labels) == {"zh", "en"}, (scene, field.name, value)
