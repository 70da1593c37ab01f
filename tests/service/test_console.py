"""The operator console: accounts, access, each figure against a hand count, the export and ``usage report``.

A small fixed day (``day_records``) is uploaded by three scanners (a metro
gate, a museum door, a clinic desk) through ``POST /api/v1/usage``, so the
roll-up is filled by the database trigger as in production; every figure is
compared with what was counted by hand from the list below. Every test runs
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import (
    CONSOLE_PASSWORD,
    accepted,
    add_operator,
    add_scanner,
    console_form,
    console_log_in,
    iso,
    local_moment,
    record,
    upload,
)

ZONE = ZoneInfo("Asia/Shanghai")


def the_day() -> date:
    """Two local days ago: its neighbours are in the past too, and all within the upload window."""
    return datetime.now(ZONE).date() - timedelta(days=2)


def transit(day: date, hour: int, minute: int, station: str, direction: str, *, code: str = "accepted",
            form: str = "online", fare: int | None = None, category: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"station": station, "direction": direction, "line": "1", "fare_cents": fare}
    if direction == "out" and code == "accepted":
        detail["category"] = category
    return record(
        decided_at=iso(local_moment(day, hour, minute)), scene="transit", ok=code == "accepted", code=code,
        form=form, detail=detail,
    )


def entry(day: date, hour: int, minute: int, *, party: int = 1, code: str = "accepted") -> dict[str, Any]:
    return record(
        decided_at=iso(local_moment(day, hour, minute)), scene="venue", ok=code == "accepted", code=code,
        detail={"party_size": party, "reservation_id": None, "capacity": 10},
    )


def checkin(day: date, hour: int, minute: int, department: str, *, code: str = "accepted") -> dict[str, Any]:
    return record(
        decided_at=iso(local_moment(day, hour, minute)), scene="clinic", ok=code == "accepted", code=code,
        detail={"department": department, "appointment_id": None},
    )


@pytest.fixture
def day_records(client: Any, runner: Any) -> dict[str, Any]:
    """The fixed day: 7 gate scans, 3 museum entries, 4 clinic check-ins; one record either side of the day."""
    day = the_day()
    _, metro = add_scanner(runner, venue="metro-1", device="gate-1", scenes="transit")
    _, museum = add_scanner(runner, venue="museum-1", device="door-1", scenes="venue")
    _, clinic = add_scanner(runner, venue="clinic-1", device="desk-1", scenes="clinic")
    gate = [
        transit(day, 8, 10, "S1", "in"),
        transit(day, 8, 20, "S1", "in", form="device"),
        transit(day, 8, 40, "S2", "out", fare=300),
        transit(day, 8, 50, "S2", "out", form="paper", fare=150, category="student"),
        transit(day, 9, 5, "S3", "out", fare=0, category="senior"),
        transit(day, 9, 30, "S1", "in", code="passback"),
        transit(day, 9, 40, "S2", "out", code="no_entry"),
        # outside the day: the evening before and just after midnight
        transit(day - timedelta(days=1), 23, 30, "S1", "in"),
        transit(day + timedelta(days=1), 0, 10, "S1", "in"),
    ]
    door = [entry(day, 8, 15, party=3), entry(day, 10, 0), entry(day, 10, 30, code="already_entered")]
    desk = [
        checkin(day, 9, 0, "内科"),
        checkin(day, 9, 20, "内科"),
        checkin(day, 9, 25, "外科"),
        checkin(day, 9, 50, "内科", code="already_checked_in"),
    ]
    for key, records in ((metro, gate), (museum, door), (clinic, desk)):
        assert accepted(upload(client, key, records)) == (len(records), 0)
    return {"day": day, "gate": gate, "door": door, "desk": desk, "keys": (metro, museum, clinic)}


def hour_start(day: date, hour: int) -> int:
    return int(local_moment(day, hour, 0).timestamp())


def test_each_figure_is_the_hand_count(app: Any, day_records: dict[str, Any]) -> None:
    from codeservice import db, usage_report

    day = day_records["day"]
    with app.app_context():
        figures = usage_report.figures(
            db.session(), usage_report.day_window(day, "Asia/Shanghai"), None, now=datetime.now(UTC)
        )
    h8, h9, h10 = (hour_start(day, hour) for hour in (8, 9, 10))
    assert figures.total == 14
    assert figures.scans_by_hour_scene == [
        (h8, "transit", 4), (h8, "venue", 1), (h9, "clinic", 4), (h9, "transit", 3), (h10, "venue", 2)
    ]
    assert figures.outcome_by_hour == [(h8, True, 5), (h9, False, 3), (h9, True, 4), (h10, False, 1), (h10, True, 1)]
    assert sorted(figures.refusals_by_code) == [
        ("already_checked_in", 1), ("already_entered", 1), ("no_entry", 1), ("passback", 1)
    ]
    assert figures.forms == [("device", 1), ("online", 12), ("paper", 1)]
    assert figures.capacity_use == [("museum-1", h8, 3, 10), ("museum-1", h10, 1, 10)]
    assert [(row.line, row.station, row.entries, row.trips, row.fare_cents, row.concessions)
            for row in figures.transit] == [
        ("1", "S1", 2, 0, 0, {}),
        ("1", "S2", 0, 2, 450, {"student": 1}),
        ("1", "S3", 0, 1, 0, {"senior": 1}),
    ]
    assert figures.clinic == [("内科", 2), ("外科", 1)]
    assert [(row.venue_id, row.device_id, row.last_upload_at is not None) for row in figures.scanners] == [
        ("clinic-1", "desk-1", True), ("metro-1", "gate-1", True), ("museum-1", "door-1", True)
    ]
    # The gate's last decision is its latest record, the one after midnight.
    gate = next(row for row in figures.scanners if row.device_id == "gate-1")
    assert gate.last_decided_at == local_moment(day + timedelta(days=1), 0, 10)


def test_one_venue_sees_only_its_records(app: Any, day_records: dict[str, Any]) -> None:
    from codeservice import db, usage_report

    with app.app_context():
        figures = usage_report.figures(
            db.session(), usage_report.day_window(day_records["day"], "Asia/Shanghai"), ["museum-1"],
            now=datetime.now(UTC),
        )
    assert figures.total == 3
    assert {scene for _, scene, _ in figures.scans_by_hour_scene} == {"venue"}
    assert figures.transit == [] and figures.clinic == []
    assert [row.venue_id for row in figures.scanners] == ["museum-1"]


def test_an_empty_day_has_no_figures(app: Any, day_records: dict[str, Any]) -> None:
    from codeservice import db, usage_report

    with app.app_context():
        figures = usage_report.figures(
            db.session(), usage_report.day_window(day_records["day"] - timedelta(days=5), "Asia/Shanghai"), None,
            now=datetime.now(UTC),
        )
    assert figures.total == 0 and figures.scans_by_hour_scene == [] and figures.transit == []


# -- accounts and access ------------------------------------------------------


def test_operators_add_list_remove(runner: Any) -> None:
    result = runner.invoke(args=["operators", "add", "--username", "Alice", "--venue", "museum-1", "--venue", "v2"])
    assert result.exit_code == 0, result.output
    password = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}", password), "the first password alone on the last line"
    assert runner.invoke(args=["operators", "add", "--username", "alice"]).exit_code == 1  # taken
    assert runner.invoke(args=["operators", "add", "--username", "no spaces"]).exit_code == 1
    listing = runner.invoke(args=["operators", "list"]).output
    assert "alice" in listing and "museum-1,v2" in listing and password not in listing
    assert runner.invoke(args=["operators", "remove", "alice"]).exit_code == 0
    assert "alice" not in runner.invoke(args=["operators", "list"]).output
    result = runner.invoke(args=["operators", "remove", "alice"])
    assert result.exit_code == 1 and "no operator" in result.output


def test_first_login_asks_for_a_new_password_first(client: Any, runner: Any) -> None:
    first = add_operator(runner, "ops")
    response = console_form(client, "/console/login", {"username": "ops", "password": first})
    assert response.status_code == 303 and response.headers["Location"].endswith("/console/password")
    for path in ("/console", "/console/export.csv"):
        assert client.get(path).headers["Location"].endswith("/console/password")
    weak = console_form(client, "/console/password", {"current_password": first, "new_password": "1234567890"})
    assert weak.status_code == 400
    response = console_form(
        client, "/console/password", {"current_password": first, "new_password": CONSOLE_PASSWORD}
    )
    assert response.status_code == 303
    assert client.get("/console").status_code == 200
    # The first password no longer works; the new one does.
    fresh = client.application.test_client()
    assert console_form(fresh, "/console/login", {"username": "ops", "password": first}).status_code == 401
    assert console_form(fresh, "/console/login", {"username": "ops", "password": CONSOLE_PASSWORD}).status_code == 303


def test_the_console_cookie_is_its_own(client: Any, runner: Any) -> None:
    first = add_operator(runner, "ops")
    response = console_form(client, "/console/login", {"username": "ops", "password": first})
    cookies = response.headers.getlist("Set-Cookie")
    session = next(c for c in cookies if c.startswith("codeservice_console="))
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/" in session
    assert not any(c.startswith("codeservice_session=") for c in cookies)


def test_login_is_throttled_like_residents(client: Any, runner: Any) -> None:
    add_operator(runner, "ops")
    for _ in range(5):
        response = console_form(client, "/console/login", {"username": "ops", "password": "wrong-guess-1"})
        assert response.status_code == 401
    locked = console_form(client, "/console/login", {"username": "ops", "password": "wrong-guess-1"})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0


def test_a_login_without_the_csrf_token_is_refused(client: Any, runner: Any) -> None:
    first = add_operator(runner, "ops")
    response = client.post("/console/login", data={"username": "ops", "password": first})
    assert response.status_code == 400
    assert "codeservice_console=" not in " ".join(response.headers.getlist("Set-Cookie"))


def test_no_resident_scanner_or_stranger_reaches_the_console(
    client: Any, logged_in: Any, day_records: dict[str, Any]
) -> None:
    day = day_records["day"].isoformat()
    for path in (f"/console?day={day}", f"/console/export.csv?day={day}"):
        # the logged-in resident (the client holds a resident session), a scanner key, nobody
        for headers in ({}, {"Authorization": f"Bearer {day_records['keys'][0]}"}):
            response = logged_in.get(path, headers=headers)
            assert response.status_code == 303 and response.headers["Location"].endswith("/console/login")
        stranger = client.application.test_client()
        response = stranger.get(path)
        assert response.status_code == 303 and b"metro-1" not in response.data


def test_an_operator_session_reaches_no_resident_page(client: Any, runner: Any) -> None:
    console_log_in(client, "ops", add_operator(runner, "ops"))
    assert client.get("/api/v1/me/usage").status_code == 401
    assert client.get("/history").headers["Location"].endswith("/login")


def test_logout_ends_the_session(client: Any, runner: Any) -> None:
    console_log_in(client, "ops", add_operator(runner, "ops"))
    assert console_form(client, "/console", {}).status_code in (405, 400)  # the page takes no POST
    page = client.get("/console").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/console").headers["Location"].endswith("/console/login")


# -- the page -----------------------------------------------------------------


def test_the_page_shows_the_day(client: Any, runner: Any, day_records: dict[str, Any]) -> None:
    console_log_in(client, "ops", add_operator(runner, "ops"))
    page = client.get(f"/console?day={day_records['day']}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<dd id="total-scans">14</dd>' in page
    assert '<dd id="total-accepted">10</dd>' in page and '<dd id="total-refused">4</dd>' in page
    for chart in ("scans-by-hour", "outcome-by-hour", "refusals", "forms", "capacity", "transit", "clinic"):
        assert f'id="chart-{chart}"' in page, chart
    assert page.count('class="bar"', page.index('id="chart-scans-by-hour"'), page.index("</svg>", page.index(
        'id="chart-scans-by-hour"'))) == 5
    assert "gate-1" in page and "door-1" in page and "desk-1" in page


def test_a_limited_operator_sees_only_their_venue(client: Any, runner: Any, day_records: dict[str, Any]) -> None:
    console_log_in(client, "museum", add_operator(runner, "museum", "museum-1"))
    day = day_records["day"]
    page = client.get(f"/console?day={day}").get_data(as_text=True)
    assert '<dd id="total-scans">3</dd>' in page
    assert "metro-1" not in page and "clinic-1" not in page and "gate-1" not in page
    assert client.get(f"/console?day={day}&venue=metro-1").status_code == 404
    export = client.get(f"/console/export.csv?day={day}").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(export.lstrip("\ufeff"))))
    records = rows[1: rows.index([])]
    assert len(records) == 3 and {row[4] for row in records} == {"museum-1"}
    assert client.get(f"/console/export.csv?day={day}&venue=metro-1").status_code == 404


def test_a_bad_day_is_a_clear_page(client: Any, runner: Any) -> None:
    console_log_in(client, "ops", add_operator(runner, "ops"))
    for day in ("2026-13-01", "yesterday", "2026-1-1"):
        assert client.get(f"/console?day={day}").status_code == 400
        assert client.get(f"/console/export.csv?day={day}").status_code == 400


# -- the export and the report ------------------------------------------------


def _sections(text: str) -> tuple[list[list[str]], list[list[str]]]:
    assert text.startswith("\ufeff"), "a byte order mark, for Excel"
    rows = list(csv.reader(io.StringIO(text[1:])))
    blank = rows.index([])
    return rows[: blank], rows[blank + 1:]


def test_the_export_holds_the_records_and_the_clearing(
    client: Any, runner: Any, day_records: dict[str, Any]
) -> None:
    console_log_in(client, "ops", add_operator(runner, "ops"))
    response = client.get(f"/console/export.csv?day={day_records['day']}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    records, clearing = _sections(response.get_data(as_text=True))
    header = records[0]
    assert header[:10] == ["id", "decided_at", "local_time", "scene", "venue_id", "device_id", "form", "ok", "code",
                           "online"]
    assert len(records) == 15  # the header and the day's 14
    ids = {row[0] for row in records[1:]}
    expected = {r["id"] for r in day_records["gate"][:7] + day_records["door"] + day_records["desk"]}
    assert ids == expected
    first = records[1]
    assert first[2] == f"{day_records['day']} 08:10:00" and first[3] == "transit" and first[7] == "true"
    uploaded = datetime.fromisoformat(day_records["gate"][0]["decided_at"].replace("Z", "+00:00"))
    assert first[1].endswith("Z") and datetime.fromisoformat(first[1].replace("Z", "+00:00")) == uploaded
    station = header.index("station")
    assert first[station] == "S1"
    assert clearing[0] == ["line", "station", "entries", "trips", "fare_cents", "concession_senior",
                           "concession_student", "concession_disabled", "concession_child"]
    assert clearing[1:] == [
        ["1", "S1", "2", "0", "0", "0", "0", "0", "0"],
        ["1", "S2", "0", "2", "450", "0", "1", "0", "0"],
        ["1", "S3", "0", "1", "0", "1", "0", "0", "0"],
    ]


@pytest.mark.parametrize("hostile", ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_csv_injection_is_neutralised(client: Any, runner: Any, hostile: str) -> None:
    # the scanner's own names, from `scanners add`, are exported too
    _, key = add_scanner(runner, venue="=venue", device="@gate", scenes="transit")
    day = the_day()
    bad = transit(day, 12, 0, hostile, "in")
    bad["detail"]["line"] = hostile
    assert accepted(upload(client, key, [bad])) == (1, 0)
    console_log_in(client, "ops", add_operator(runner, "ops"))
    records, clearing = _sections(client.get(f"/console/export.csv?day={day}").get_data(as_text=True))
    row = dict(zip(records[0], records[1], strict=True))
    assert row["station"] == "'" + hostile and row["line"] == "'" + hostile
    assert row["venue_id"] == "'=venue" and row["device_id"] == "'@gate"
    assert clearing[1][:2] == ["'" + hostile, "'" + hostile]
    for cell in (cell for line in records + clearing for cell in line):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_the_report_is_the_same_text_on_both_databases(
    app: Any, client: Any, runner: Any, day_records: dict[str, Any]
) -> None:
    # PostgreSQL writes the records' CSV itself (COPY); it must be what the csv module writes from the rows
    _, key = add_scanner(runner, venue="=venue", device="@gate", scenes="transit")
    day = day_records["day"]
    awkward = [
        transit(day, 12, minute, station, "out", fare=fare)
        for minute, (station, fare) in enumerate(
            [("=1+2", 300), ('say "hi", then\nleave', 5), ("+1", 0), ("-2", 12), ("@x", 1), ("\tcmd", 2),
             ("\rcmd", 3), ('"=quoted"', 4), ("a,\"=b", 5), ("S 站", None)]
        )
    ]
    awkward[0]["detail"]["line"] = "-1"
    awkward[1]["decided_at"] = awkward[2]["decided_at"]  # the same moment: ordered by id
    awkward[3]["decided_at"] = awkward[3]["decided_at"].replace(".000Z", ".120Z")  # written .12
    response = upload(client, key, awkward)
    assert accepted(response) == (len(awkward), 0), response.get_json()
    from codeservice import db, usage_report

    fields = ["station", "direction", "line", "fare_cents", "trip_id", "entry_station", "party_size"]
    with app.app_context():
        session = db.session()
        for venues, count in ((None, 24), (["=venue"], 10), (["nowhere"], 0)):
            window = usage_report.day_window(day, "Asia/Shanghai")
            text = "".join(usage_report.csv_report(session, window, venues, fields))
            expected = io.StringIO()
            writer = csv.writer(expected, quoting=csv.QUOTE_ALL, lineterminator="\n")
            for row in usage_report._records(session, window, venues):
                writer.writerow(
                    [usage_report._cell(value) for value in usage_report._record_values(row, window, fields)]
                )
            records = text[text.index("\n") + 1: text.index("\n\n") + 1]
            assert records == expected.getvalue()
            assert len(list(csv.reader(io.StringIO(records)))) == count


def test_usage_report_csv_and_json(runner: Any, day_records: dict[str, Any]) -> None:
    day = day_records["day"].isoformat()
    result = runner.invoke(args=["usage", "report", "--day", day, "--format", "csv"])
    assert result.exit_code == 0, result.output
    records, clearing = _sections(result.stdout_bytes.decode("utf-8"))
    assert len(records) == 15 and len(clearing) == 4
    result = runner.invoke(args=["usage", "report", "--day", day, "--venue", "metro-1", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout_bytes)
    assert report["day"] == day and report["timezone"] == "Asia/Shanghai" and report["venues"] == ["metro-1"]
    assert len(report["records"]) == 7 and {r["venue_id"] for r in report["records"]} == {"metro-1"}
    assert report["clearing"][1] == {
        "line": "1", "station": "S2", "entries": 0, "trips": 2, "fare_cents": 450, "concession_senior": 0,
        "concession_student": 1, "concession_disabled": 0, "concession_child": 0,
    }


def test_usage_report_of_an_empty_day_is_empty(runner: Any) -> None:
    result = runner.invoke(args=["usage", "report", "--day", "2020-01-01", "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout_bytes) == {
        "day": "2020-01-01", "timezone": "Asia/Shanghai", "venues": None, "records": [], "clearing": []
    }
    result = runner.invoke(args=["usage", "report", "--day", "2020-01-01"])
    records, clearing = _sections(result.stdout_bytes.decode("utf-8"))
    assert len(records) == 1 and len(clearing) == 1  # the header rows alone


@pytest.mark.parametrize("day", ["2026-02-30", "20260101", "2026-1-01", "tomorrow", ""])
def test_usage_report_refuses_a_bad_day(runner: Any, day: str) -> None:
    result = runner.invoke(args=["usage", "report", "--day", day])
    assert result.exit_code == 2 and "--day" in result.output


# -- scanners' health -----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("keys-age=120, revocations-age=30, clock-offset=-2, pending=5", (120, 30, -2, 5)),
        ("pending=0", (None, None, None, 0)),
        ("keys-age=1,pending=2;x=1, other=?1", (1, None, None, 2)),
        ("keys-age=-1, clock-offset=3", (None, None, 3, None)),
        ('keys-age="120"', None),  # no integer: read, but nothing to keep
        ("keys-age=12,", None),  # not a dictionary
        ("keys-age=1.5", None),
        ("KEYS-AGE=1", None),
        ("keys-age=9999999999999999", None),
        ("\u00e9=1", None),
    ],
)
def test_the_sync_report_is_kept_and_garbage_ignored(
    app: Any, client: Any, runner: Any, header: str, expected: tuple[Any, ...] | None
) -> None:
    from codeservice import db
    from codeservice.models import ScannerHealth

    scanner_id, key = add_scanner(runner, venue="metro-1", device="gate-9", scenes="transit")
    response = client.post(
        "/api/v1/usage", json={"records": []},
        headers={"Authorization": f"Bearer {key}", "Codeservice-Verifier-Status": header},
    )
    assert accepted(response) == (0, 0)
    with app.app_context():
        health = db.session().get(ScannerHealth, scanner_id)
        assert health is not None and health.last_upload_at is not None
        got = (health.keys_age, health.revocations_age, health.clock_offset, health.pending)
        if expected is None:
            assert health.reported_at is None and got == (None, None, None, None)
        else:
            assert health.reported_at is not None and got == expected


def test_a_later_upload_without_a_report_keeps_the_last_one(app: Any, client: Any, runner: Any) -> None:
    from codeservice import db
    from codeservice.models import ScannerHealth

    scanner_id, key = add_scanner(runner, venue="metro-1", device="gate-9", scenes="transit")
    auth = {"Authorization": f"Bearer {key}"}
    upload_with = {**auth, "Codeservice-Verifier-Status": "keys-age=10, pending=3"}
    assert accepted(client.post("/api/v1/usage", json={"records": []}, headers=upload_with)) == (0, 0)
    assert accepted(client.post("/api/v1/usage", json={"records": []}, headers=auth)) == (0, 0)
    with app.app_context():
        health = db.session().get(ScannerHealth, scanner_id)
        assert health is not None and (health.keys_age, health.pending) == (10, 3)


# -- the roll-up, whatever inserts the records ------------------------------------


def test_the_roll_up_counts_records_inserted_by_any_path(app: Any) -> None:
    """Raw SQL on the driver (a data-modifying CTE on PostgreSQL), odd details included: counted, never refused."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.exc import DataError

    from codeservice import db, usage_report

    day = the_day()
    at = local_moment(day, 7, 30).astimezone(UTC)
    details = [
        '{"station": "S9", "direction": "out", "line": "2", "fare_cents": 400, "category": "child"}',
        '{"station": "S9", "direction": "out", "line": "2", "fare_cents": "abc", "category": 7}',
        "[1, 2]",
        '"just text"',
        '{"station": {"nested": true}, "direction": "out", "fare_cents": -5}',
    ]
    nul = '{"station": "S\\u00009", "direction": "in", "line": "2"}'  # an escaped NUL: SQLite's text keeps it
    with app.app_context():
        engine = db.engine()
        postgres = engine.dialect.name == "postgresql"
        if not postgres:  # PostgreSQL's jsonb cannot hold one: refused, below
            details.append(nul)
        insert = (
            "INSERT INTO usage_records (id, scene, venue_id, device_id, sub, jti, decided_at, ok, code, detail, "
            "scanner_id, online, received_at, form) VALUES (:id, 'transit', 'metro-2', 'g', NULL, NULL, :at, true, "
            "'accepted', " + ("CAST(:detail AS jsonb)" if postgres else ":detail") + ", NULL, true, :at, 'online')"
        )
        statement = f"WITH added AS ({insert} RETURNING id) SELECT count(*) FROM added" if postgres else insert
        with engine.begin() as connection:
            for detail in details:
                connection.execute(text(statement), {"id": str(uuid.uuid4()), "at": at, "detail": detail})
        if postgres:
            with pytest.raises(DataError, match="Unicode escape"), engine.begin() as connection:
                connection.execute(text(statement), {"id": str(uuid.uuid4()), "at": at, "detail": nul})
        window = usage_report.day_window(day, "Asia/Shanghai")
        figures = usage_report.figures(db.session(), window, ["metro-2"], now=datetime.now(UTC))
        report = "".join(usage_report.csv_report(db.session(), window, ["metro-2"], ["station", "direction"]))
    assert figures.total == len(details)
    rows = list(csv.reader(io.StringIO(report[1 : report.index("\n\n")])))
    # each record once; the details that are no object, and the one holding a NUL, as blank cells
    assert sorted(tuple(row[-2:]) for row in rows[1:]) == [
        *[("", "")] * (len(details) - 3), ("S9", "out"), ("S9", "out"), ('{"nested": true}', "out"),
    ]
    by_station = {row.station: row for row in figures.transit}
    assert by_station["S9"].trips == 2 and by_station["S9"].fare_cents == 400  # "abc" is no fare
    assert by_station["S9"].concessions == {"child": 1}  # 7 is no category
