"""The operator console: ``/console`` (a day's usage, charts, scanners), its CSV export, login and password.

Operators log in with ``operators add``'s username and first password and
must choose their own before anything else. The session is the console's
own cookie (:mod:`codeservice.operator_auth`); a resident's session, a
scanner key or nobody at all gets the login page, never a figure. Logins are
throttled like residents' (cool-down per device cookie or account, the
``login`` rate limit per address); forms carry the CSRF token. An operator
limited to some venues sees only theirs, on the page and in the export.

The figures come from :mod:`codeservice.usage_report` (one query each over
the hourly roll-up) and are drawn as inline SVG by
:mod:`codeservice.svg_charts`, each with its numbers in a table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from verifiers.contract import CATEGORIES

from .. import db, device_cookies, operator_auth, operators, residents, svg_charts, usage_report
from ..context import data_keys, scene_registry
from ..errors import BadCredentials, ClientError, InvalidDay, RateLimited, TooManyAttempts, VenueNotVisible
from ..identity import MIN_PASSWORD_LENGTH
from ..models import Operator, Scanner
from ..svg_charts import Series
from . import csrf, i18n, page_headers, template_globals

console = Blueprint("console", __name__, url_prefix=operator_auth.PREFIX)
console.context_processor(template_globals)
console.after_request(page_headers)

OPEN_ENDPOINTS = frozenset({"console.login"})
PASSWORD_ENDPOINTS = frozenset({"console.password", "console.logout"})
CAPACITY_SERIES = 8
"""The capacity chart draws the venues with the highest use, at most this many."""


def init_app(app: Flask) -> None:
    app.register_blueprint(console)


LAYOUT = "web/console/base.html"


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return _rendered(f"web/console/{template}", status, context)


def _message(status: int, title_key: str, message_key: str, back: str) -> Response:
    """The residents' message page in the console's layout."""
    context = {"layout": LAYOUT, "title_key": title_key, "message_key": message_key, "back": back}
    return _rendered("web/message.html", status, context)


def _rendered(template: str, status: int, context: dict[str, Any]) -> Response:
    response = current_app.make_response(render_template(template, **context))
    response.status_code = status
    return response


def _secure() -> bool:
    return bool(current_app.config["SESSION_COOKIE_SECURE"])


def _operator() -> Operator:
    operator: Operator = g.operator
    return operator


@console.before_request
def _guard() -> Response | None:
    if request.method == "POST" and not csrf.is_valid():
        return _message(400, "csrf_title", "csrf_message", back=request.path)
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    operator = operator_auth.current_operator()
    if operator is None:
        return redirect(url_for("console.login"), code=303)
    g.operator = operator
    if operator.must_change_password and request.endpoint not in PASSWORD_ENDPOINTS:
        return redirect(url_for("console.password"), code=303)
    return None


@console.errorhandler(RateLimited)
def _rate_limited(error: RateLimited) -> Response:
    message = i18n.translate("err_too_many_attempts", minutes=max(1, math.ceil(error.retry_after / 60)))
    response = _page("login.html", error.status, username=request.form.get("username", ""), error=message)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


@console.route("/login", methods=["GET", "POST"])
def login() -> Response:
    if request.method == "GET":
        if operator_auth.current_operator() is not None:
            return redirect(url_for("console.index"))
        return _page("login.html", username="", error=None)
    username = request.form.get("username", "")
    config = current_app.config
    keys = data_keys()
    try:
        operator = operators.authenticate(
            db.session(),
            keys,
            username,
            request.form.get("password", ""),
            now=datetime.now(UTC),
            max_failures=config.get("LOGIN_MAX_FAILURES", residents.DEFAULT_MAX_FAILURES),
            cooldown_seconds=config.get("LOGIN_COOLDOWN", residents.DEFAULT_COOLDOWN_SECONDS),
            device_cookie=device_cookies.presented(operator_auth.device_cookie_name(secure=_secure())),
        )
    except ClientError as error:
        if isinstance(error, TooManyAttempts):
            minutes = max(1, math.ceil((error.retry_after or 60) / 60))
            message = i18n.translate("err_too_many_attempts", minutes=minutes)
        else:
            message = i18n.translate("err_operator_bad_credentials")
        response = _page("login.html", error.status, username=username.strip(), error=message)
        if error.retry_after:
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    operator_auth.log_in(operator)
    target = "console.password" if operator.must_change_password else "console.index"
    response = redirect(url_for(target), code=303)
    device_cookies.set_device_cookie(
        response,
        operator_auth.device_cookie_name(secure=_secure()),
        residents.device_cookie_for(keys, operators.account_hash(keys, operator.username)),
    )
    return response


@console.post("/logout")
def logout() -> Response:
    operator_auth.log_out()
    flash("logged_out")
    return redirect(url_for("console.login"), code=303)


@console.route("/password", methods=["GET", "POST"])
def password() -> Response:
    operator = _operator()
    if request.method == "GET":
        return _page("password.html", error=None, min_length=MIN_PASSWORD_LENGTH)
    try:
        operators.change_password(
            db.session(), operator, request.form.get("current_password", ""), request.form.get("new_password", "")
        )
    except BadCredentials:
        message = i18n.translate("err_current_password")
        return _page("password.html", 400, error=message, min_length=MIN_PASSWORD_LENGTH)
    except ClientError as error:
        message = i18n.translate(f"err_{error.code}", min=MIN_PASSWORD_LENGTH) if i18n.has(f"err_{error.code}") else (
            i18n.translate("err_generic"))
        return _page("password.html", 400, error=message, min_length=MIN_PASSWORD_LENGTH)
    operator_auth.refresh_epoch(operator)
    flash("console_password_changed")
    return redirect(url_for("console.index"), code=303)


# -- the day -------------------------------------------------------------------


def _scope() -> tuple[usage_report.DayWindow, str | None, list[str] | None]:
    """The day, the venue chosen (None: all) and the venues to count (None: every one); InvalidDay, or 404."""
    zone = current_app.config["TIMEZONE"]
    text = request.args.get("day", "")
    day = usage_report.parse_day(text) if text else datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
    window = usage_report.day_window(day, zone)
    venue = request.args.get("venue") or None
    operator = _operator()
    if venue is not None and not operators.sees(operator, venue):
        raise VenueNotVisible()
    venues = [venue] if venue is not None else (list(operator.venues) if operator.venues else None)
    return window, venue, venues


@console.errorhandler(InvalidDay)
@console.errorhandler(VenueNotVisible)
def _bad_scope(error: ClientError) -> Response:
    key = "console_bad_day" if isinstance(error, InvalidDay) else "console_bad_venue"
    back = url_for("console.index")
    return _message(error.status, "console_title", key, back=back)


@console.get("")
def index() -> Response:
    window, venue, venues = _scope()
    now = datetime.now(UTC)
    figures = usage_report.figures(db.session(), window, venues, now=now)
    operator = _operator()
    return _page(
        "index.html",
        operator=operator,
        day=window.day.isoformat(),
        venue=venue,
        venue_choices=_venue_choices(operator),
        zone=window.zone.key,
        figures=figures,
        charts=_charts(figures),
        accepted=sum(count for _, ok, count in figures.outcome_by_hour if ok),
        refused=sum(count for _, ok, count in figures.outcome_by_hour if not ok),
        scanners=[_scanner_row(row, window) for row in figures.scanners],
        export_url=url_for("console.export", day=window.day.isoformat(), venue=venue or None),
    )


@console.get("/export.csv")
def export() -> Response:
    window, venue, venues = _scope()
    fields = usage_report.detail_columns(
        [[field.name for field in scene_registry().usage_fields(name)] for name in scene_registry().names()]
    )
    session = db.session()
    chunks = usage_report.csv_report(session, window, venues, fields)
    name = f"usage-{window.day.isoformat()}" + (f"-{venue}" if venue else "") + ".csv"
    ascii_name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in name)
    response = Response(stream_with_context(_stream(chunks, session)), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
    )
    return response


def _stream(chunks: Iterator[str], session: Session) -> Iterator[bytes]:
    """The chunks as UTF-8; the session's transaction ends with the last (on SQLite it holds the write lock)."""
    try:
        for chunk in chunks:
            yield chunk.encode("utf-8")
    finally:
        session.close()


def _venue_choices(operator: Operator) -> list[str]:
    if operator.venues:
        return sorted(operator.venues)
    return sorted(set(db.session().scalars(select(Scanner.venue_id).distinct())))


def _label(key: str, fallback: str) -> str:
    return i18n.translate(key) if i18n.has(key) else fallback


def _scene_label(scene: str) -> str:
    return _label(f"scene_{scene}", scene or i18n.translate("scene_unknown"))


def _charts(figures: usage_report.Figures) -> dict[str, dict[str, Any]]:
    """Each chart's SVG and the rows of its table, from the figures."""
    window = figures.window
    hours = window.hours
    index = {hour: at for at, hour in enumerate(hours)}
    labels = [window.hour_label(hour) for hour in hours]
    charts: dict[str, dict[str, Any]] = {}

    scenes = sorted({scene for _, scene, _ in figures.scans_by_hour_scene})
    by_scene = {scene: [0.0] * len(hours) for scene in scenes}
    for hour, scene, count in figures.scans_by_hour_scene:
        if hour in index:
            by_scene[scene][index[hour]] += count
    charts["scans"] = _chart(
        "chart_scans_by_hour", labels, [Series(_scene_label(scene), by_scene[scene]) for scene in scenes],
        header=[i18n.translate("col_hour"), *(_scene_label(scene) for scene in scenes)],
        rows=[[label, *(int(by_scene[scene][at]) for scene in scenes)] for at, label in enumerate(labels)],
    )

    outcome = {True: [0.0] * len(hours), False: [0.0] * len(hours)}
    for hour, ok, count in figures.outcome_by_hour:
        if hour in index:
            outcome[ok][index[hour]] += count
    names = {True: i18n.translate("console_accepted"), False: i18n.translate("console_refused")}
    charts["outcome"] = _chart(
        "chart_outcome_by_hour", labels, [Series(names[True], outcome[True]), Series(names[False], outcome[False])],
        header=[i18n.translate("col_hour"), names[True], names[False]],
        rows=[[label, int(outcome[True][at]), int(outcome[False][at])] for at, label in enumerate(labels)],
    )

    code_labels = [_label(f"decision_{code}", code) for code, _ in figures.refusals_by_code]
    charts["refusals"] = _chart(
        "chart_refusals", code_labels,
        [Series(i18n.translate("col_count"), [count for _, count in figures.refusals_by_code])],
        header=[i18n.translate("col_code"), i18n.translate("col_count")],
        rows=[[f"{label} ({code})", count] for label, (code, count) in zip(code_labels, figures.refusals_by_code,
                                                                             strict=True)],
    )

    counts = dict(figures.forms)
    forms = [*usage_report.FORMS, *sorted(set(counts) - set(usage_report.FORMS))]
    form_labels = [_label(f"form_{form}", form) for form in forms]
    charts["forms"] = _chart(
        "chart_forms", form_labels, [Series(i18n.translate("col_count"), [counts.get(form, 0) for form in forms])],
        header=[i18n.translate("col_form"), i18n.translate("col_count")],
        rows=[[label, counts.get(form, 0)] for label, form in zip(form_labels, forms, strict=True)],
    )

    charts["capacity"] = _capacity_chart(figures, hours, index, labels)
    charts["transit"] = _transit_chart(figures.transit)

    departments = [department or "—" for department, _ in figures.clinic]
    charts["clinic"] = _chart(
        "chart_clinic", departments, [Series(i18n.translate("col_checkins"), [count for _, count in figures.clinic])],
        header=[i18n.translate("col_department"), i18n.translate("col_checkins")],
        rows=[[department, count] for department, (_, count) in zip(departments, figures.clinic, strict=True)],
    )
    return charts


def _capacity_chart(
    figures: usage_report.Figures, hours: list[int], index: dict[int, int], labels: list[str]
) -> dict[str, Any]:
    people: dict[str, list[float]] = {}
    capacity: dict[str, int] = {}
    for venue, hour, count, cap in figures.capacity_use:
        people.setdefault(venue, [0.0] * len(hours))
        capacity[venue] = cap
        if hour in index:
            people[venue][index[hour]] += count
    cumulative: dict[str, list[float]] = {}
    for venue, counts in people.items():
        running, values = 0.0, []
        for hourly in counts:
            running += hourly
            values.append(round(100 * running / capacity[venue], 1))
        cumulative[venue] = values
    shown = sorted(cumulative, key=lambda venue: (-max(cumulative[venue], default=0), venue))[:CAPACITY_SERIES]
    series = [Series(venue, cumulative[venue]) for venue in shown]
    chart = svg_charts.line_chart(
        i18n.translate("chart_capacity"), labels, series, unit=i18n.translate("axis_percent"),
        chart_id="chart-capacity", top=100,
    ) if series else ""
    rows = [
        [venue, int(sum(people[venue])), capacity[venue], f"{cumulative[venue][-1] if cumulative[venue] else 0:.1f} %"]
        for venue in sorted(cumulative)
    ]
    header = [i18n.translate(key) for key in ("col_venue", "col_people", "col_capacity", "col_use")]
    return {"title": i18n.translate("chart_capacity"), "svg": Markup(chart), "header": header, "rows": rows,
            "id": "chart-capacity"}


def _transit_chart(rows: Sequence[usage_report.ClearingRow]) -> dict[str, Any]:
    labels = [f"{row.line} {row.station}".strip() for row in rows]
    full = [float(row.trips - sum(row.concessions.values())) for row in rows]
    series = [Series(i18n.translate("full_fare"), full)]
    for category in CATEGORIES:
        values = [float(row.concessions.get(category, 0)) for row in rows]
        if any(values):
            series.append(Series(i18n.translate(f"concession_{category}"), values))
    header = [
        i18n.translate(key) for key in ("col_line", "col_station", "col_entries", "col_trips", "col_fare")
    ] + [i18n.translate(f"concession_{category}") for category in CATEGORIES]
    table = [
        [row.line, row.station, row.entries, row.trips, f"{row.fare_cents / 100:.2f}",
         *(row.concessions.get(category, 0) for category in CATEGORIES)]
        for row in rows
    ]
    chart = _chart("chart_transit", labels, series, header=header, rows=table)
    return chart


def _chart(
    title_key: str, labels: Sequence[str], series: Sequence[Series], *, header: list[str], rows: list[list[Any]]
) -> dict[str, Any]:
    chart_id = "chart-" + title_key.removeprefix("chart_").replace("_", "-")
    title = i18n.translate(title_key)
    drawn = any(value for one in series for value in one.values)
    unit = i18n.translate("axis_scans")
    svg = svg_charts.bar_chart(title, labels, series, unit=unit, chart_id=chart_id) if drawn else ""
    # Our own SVG writer's output: every label in it is escaped there.
    return {"title": title, "svg": Markup(svg), "header": header, "rows": rows if drawn else [], "id": chart_id}


def _scanner_row(row: usage_report.ScannerRow, window: usage_report.DayWindow) -> dict[str, Any]:
    def when(moment: datetime | None) -> str:
        return window.local(moment).strftime("%Y-%m-%d %H:%M:%S") if moment is not None else i18n.translate("unknown")

    def seconds(value: int | None) -> str:
        return i18n.translate("seconds", n=value) if value is not None else i18n.translate("unknown")

    return {
        "venue": row.venue_id,
        "device": row.device_id,
        "scenes": ", ".join(_scene_label(scene) for scene in row.scenes),
        "staffed": i18n.translate("yes" if row.attended else "no"),
        "revoked": row.revoked,
        "last_decision": when(row.last_decided_at),
        "last_upload": when(row.last_upload_at),
        "pending": row.pending if row.pending is not None else i18n.translate("unknown"),
        "keys_age": seconds(row.keys_age),
        "revocations_age": seconds(row.revocations_age),
        "clock_offset": seconds(row.clock_offset),
        "reported": when(row.reported_at),
    }
