"""The operator's view of the usage log: a local day's figures, its records and the transit clearing. No Flask.

Used by the console (``/console``, its CSV export) and by ``usage report``
alike. A local day is a calendar day in the service's time zone
(``CODESERVICE_TIMEZONE``, Asia/Shanghai by default). ``venues`` narrows
everything to those venues (an operator limited to some, or the one chosen);
None is every venue.

Every figure is one query over ``usage_hourly``, the roll-up of the records
(migrations 0008 and 0012: on SQLite a trigger counts each record as it lands,
on PostgreSQL :func:`~codeservice.usage_rollup.roll_up` counts them after their commit, before every
read), grouped by what the figure shows: an hour
of a busy day is a few hundred rows there instead of tens of thousands of
records. The records themselves (the export) come from ``usage_records`` by
``decided_at`` (or ``(venue_id, decided_at)``), streamed.

Exports treat every value as hostile (scanners wrote them): in CSV a text
cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
gets a leading apostrophe (OWASP, "CSV Injection"), and every text cell is
quoted.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from verifiers.contract import CATEGORIES

from .errors import InvalidDay
from .models import Credential, Device, Resident, Scanner, ScannerHealth, UsageHourly, UsageRecord, as_utc
from .revocation import LISTED_AFTER_EXPIRY
from .usage import holds_nul
from .usage_rollup import roll_up

__all__ = [
    "DayWindow",
    "Figures",
    "csv_report",
    "day_window",
    "figures",
    "json_report",
    "neutralise",
    "parse_day",
]

DEFAULT_TIMEZONE = "Asia/Shanghai"
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HOUR = 3600
FORMS = ("online", "device", "paper")
RECORD_COLUMNS = ("id", "decided_at", "local_time", "scene", "venue_id", "device_id", "form", "ok", "code", "online")
CLEARING_COLUMNS = (
    "line", "station", "entries", "trips", "fare_cents", *(f"concession_{category}" for category in CATEGORIES)
)
_DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r")
STREAM_BATCH = 5000


def parse_day(text: str) -> date:
    """``YYYY-MM-DD`` as a date; InvalidDay otherwise."""
    if not isinstance(text, str) or not _DAY.fullmatch(text):
        raise InvalidDay()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidDay() from None


@dataclass(frozen=True)
class DayWindow:
    """A local day: its UTC bounds and its hours (23 or 25 on a day the clocks change)."""

    day: date
    zone: ZoneInfo
    start: datetime
    end: datetime

    @property
    def hours(self) -> list[int]:
        """Each hour's start, seconds since the epoch."""
        first, last = int(self.start.timestamp()), int(self.end.timestamp())
        return list(range(first - first % _HOUR, last, _HOUR))

    def hour_label(self, hour_start: int) -> str:
        return datetime.fromtimestamp(hour_start, self.zone).strftime("%H")

    def local(self, moment: datetime) -> datetime:
        return as_utc(moment).astimezone(self.zone)


def day_window(day: date, zone: ZoneInfo | str) -> DayWindow:
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz).astimezone(UTC)
    return DayWindow(day, tz, start, end)


def check_zone(name: str) -> ZoneInfo:
    """The zone if its offsets are whole hours (the roll-up counts by UTC hour); ValueError otherwise."""
    zone = ZoneInfo(name)
    for month in (1, 4, 7, 10):
        offset = datetime(2026, month, 1, tzinfo=zone).utcoffset() or timedelta()
        if offset.total_seconds() % _HOUR:
            raise ValueError(f"{name} is not a whole number of hours from UTC")
    return zone


# -- figures -----------------------------------------------------------------


def _hourly(window: DayWindow, venues: Sequence[str] | None, *columns: Any) -> Select[Any]:
    query = select(*columns).where(
        UsageHourly.hour_start >= int(window.start.timestamp()), UsageHourly.hour_start < int(window.end.timestamp())
    )
    if venues is not None:
        query = query.where(UsageHourly.venue_id.in_(venues))
    return query


@dataclass
class Figures:
    """A day's figures, each from one query; rows as plain tuples, hours as epoch seconds."""

    window: DayWindow
    scans_by_hour_scene: list[tuple[int, str, int]] = field(default_factory=list)
    outcome_by_hour: list[tuple[int, bool, int]] = field(default_factory=list)
    refusals_by_code: list[tuple[str, int]] = field(default_factory=list)
    forms: list[tuple[str, int]] = field(default_factory=list)
    capacity_use: list[tuple[str, int, int, int]] = field(default_factory=list)
    """(venue, hour, people let in that hour, capacity) for venues whose scans named a capacity."""
    transit: list[ClearingRow] = field(default_factory=list)
    clinic: list[tuple[str, int]] = field(default_factory=list)
    scanners: list[ScannerRow] = field(default_factory=list)
    revoked: int = 0
    devices: int = 0

    @property
    def total(self) -> int:
        return sum(count for _, _, count in self.outcome_by_hour)


def figures(session: Session, window: DayWindow, venues: Sequence[str] | None, *, now: datetime) -> Figures:
    """Every figure of the console for the day and venues."""
    roll_up(session)
    records = func.sum(UsageHourly.records)
    result = Figures(window)
    result.scans_by_hour_scene = [
        (int(hour), scene, int(count))
        for hour, scene, count in session.execute(
            _hourly(window, venues, UsageHourly.hour_start, UsageHourly.scene, records)
            .group_by(UsageHourly.hour_start, UsageHourly.scene)
            .order_by(UsageHourly.hour_start, UsageHourly.scene)
        )
    ]
    result.outcome_by_hour = [
        (int(hour), bool(ok), int(count))
        for hour, ok, count in session.execute(
            _hourly(window, venues, UsageHourly.hour_start, UsageHourly.ok, records)
            .group_by(UsageHourly.hour_start, UsageHourly.ok)
            .order_by(UsageHourly.hour_start, UsageHourly.ok)
        )
    ]
    result.refusals_by_code = [
        (code, int(count))
        for code, count in session.execute(
            _hourly(window, venues, UsageHourly.code, records)
            .where(UsageHourly.ok.is_(False))
            .group_by(UsageHourly.code)
            .order_by(records.desc(), UsageHourly.code)
        )
    ]
    result.forms = [
        (form, int(count))
        for form, count in session.execute(
            _hourly(window, venues, UsageHourly.form, records).group_by(UsageHourly.form).order_by(UsageHourly.form)
        )
    ]
    result.capacity_use = capacity_use(session, window, venues)
    result.transit = clearing(session, window, venues)
    result.clinic = [
        (department, int(count))
        for department, count in session.execute(
            _hourly(window, venues, UsageHourly.department, records)
            .where(UsageHourly.scene == "clinic", UsageHourly.ok.is_(True))
            .group_by(UsageHourly.department)
            .order_by(records.desc(), UsageHourly.department)
        )
    ]
    result.scanners = scanner_table(session, venues)
    result.revoked = revocation_list_size(session, now)
    enrolled = select(func.count()).select_from(Device).where(Device.withdrawn_at.is_(None))
    result.devices = int(session.scalar(enrolled) or 0)
    return result


def capacity_use(session: Session, window: DayWindow, venues: Sequence[str] | None) -> list[tuple[str, int, int, int]]:
    """People let in per hour at each venue whose scans named a capacity, with the day's largest capacity."""
    rows = session.execute(
        _hourly(
            window, venues, UsageHourly.venue_id, UsageHourly.hour_start, func.sum(UsageHourly.people),
            func.max(UsageHourly.capacity),
        )
        .where(UsageHourly.scene == "venue")
        .group_by(UsageHourly.venue_id, UsageHourly.hour_start)
        .order_by(UsageHourly.venue_id, UsageHourly.hour_start)
    ).all()
    capacity: dict[str, int] = {}
    for venue, _, _, cap in rows:
        if cap is not None:
            capacity[venue] = max(capacity.get(venue, 0), int(cap))
    return [
        (venue, int(hour), int(people or 0), capacity[venue]) for venue, hour, people, _ in rows if venue in capacity
    ]


@dataclass
class ClearingRow:
    """One line and station of a transit day: entries, trips ended there, their fares, concession trips by category."""

    line: str
    station: str
    entries: int = 0
    trips: int = 0
    fare_cents: int = 0
    concessions: dict[str, int] = field(default_factory=dict)

    def cells(self) -> list[Any]:
        return [
            self.line, self.station, self.entries, self.trips, self.fare_cents,
            *(self.concessions.get(category, 0) for category in CATEGORIES),
        ]


def clearing(session: Session, window: DayWindow, venues: Sequence[str] | None) -> list[ClearingRow]:
    """The transit clearing summary: per line and station, accepted entries and exits (trips), fares, concessions."""
    roll_up(session)
    rows = session.execute(
        _hourly(
            window, venues, UsageHourly.line, UsageHourly.station, UsageHourly.direction, UsageHourly.category,
            func.sum(UsageHourly.records), func.sum(UsageHourly.fare_cents),
        )
        .where(UsageHourly.scene == "transit", UsageHourly.ok.is_(True))
        .group_by(UsageHourly.line, UsageHourly.station, UsageHourly.direction, UsageHourly.category)
        .order_by(UsageHourly.line, UsageHourly.station)
    )
    summary: dict[tuple[str, str], ClearingRow] = {}
    for line, station, direction, category, count, fare in rows:
        row = summary.setdefault((line, station), ClearingRow(line, station))
        if direction == "in":
            row.entries += int(count)
        elif direction == "out":
            row.trips += int(count)
            row.fare_cents += int(fare or 0)
            if category:
                row.concessions[category] = row.concessions.get(category, 0) + int(count)
    return list(summary.values())


@dataclass(frozen=True)
class ScannerRow:
    id: int
    venue_id: str
    device_id: str
    scenes: list[str]
    attended: bool
    revoked: bool
    last_decided_at: datetime | None
    last_upload_at: datetime | None
    reported_at: datetime | None
    keys_age: int | None
    revocations_age: int | None
    clock_offset: int | None
    pending: int | None


def scanner_table(session: Session, venues: Sequence[str] | None) -> list[ScannerRow]:
    """Every scanner (of ``venues``) with its last decision (one index probe each), last upload and sync report."""
    last = (
        select(func.max(UsageRecord.decided_at))
        .where(UsageRecord.scanner_id == Scanner.id)
        .correlate(Scanner)
        .scalar_subquery()
    )
    query = (
        select(Scanner, last, ScannerHealth)
        .outerjoin(ScannerHealth, ScannerHealth.scanner_id == Scanner.id)
        .order_by(Scanner.venue_id, Scanner.device_id, Scanner.id)
    )
    if venues is not None:
        query = query.where(Scanner.venue_id.in_(venues))
    rows = []
    for scanner, last_decided, health in session.execute(query):
        rows.append(
            ScannerRow(
                scanner.id, scanner.venue_id, scanner.device_id, list(scanner.scenes), scanner.attended,
                scanner.revoked_at is not None,
                as_utc(last_decided) if last_decided is not None else None,
                as_utc(health.last_upload_at) if health else None,
                as_utc(health.reported_at) if health and health.reported_at else None,
                health.keys_age if health else None,
                health.revocations_age if health else None,
                health.clock_offset if health else None,
                health.pending if health else None,
            )
        )
    return rows


def revocation_list_size(session: Session, now: datetime) -> int:
    """The entries of the signed revocation list: revoked residents, and credentials listed at ``now``."""
    residents = session.scalar(select(func.count()).select_from(Resident).where(Resident.revoked_at.is_not(None)))
    credentials = session.scalar(
        select(func.count())
        .select_from(Credential)
        .where(Credential.revoked_at.is_not(None), Credential.expires_at >= now.astimezone(UTC) - LISTED_AFTER_EXPIRY)
    )
    return int(residents or 0) + int(credentials or 0)


# -- the report ---------------------------------------------------------------


def neutralise(value: Any) -> Any:
    """A cell as a spreadsheet may show it: text starting with = + - @ tab or CR gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_DANGEROUS_START):
        return "'" + value
    return value


_RECORD = (
    UsageRecord.id, UsageRecord.decided_at, UsageRecord.scene, UsageRecord.venue_id, UsageRecord.device_id,
    UsageRecord.form, UsageRecord.ok, UsageRecord.code, UsageRecord.online, UsageRecord.detail,
)


def _records(session: Session, window: DayWindow, venues: Sequence[str] | None) -> Iterator[Row[Any]]:
    """The day's records in time order, fetched in batches (a server-side cursor on PostgreSQL)."""
    query = select(*_RECORD).where(UsageRecord.decided_at >= window.start, UsageRecord.decided_at < window.end)
    if venues is not None:
        query = query.where(UsageRecord.venue_id.in_(venues))
    query = query.order_by(UsageRecord.decided_at, UsageRecord.id)
    yield from session.execute(query.execution_options(yield_per=STREAM_BATCH))


def _utc_text(moment: datetime) -> str:
    """RFC 3339 in UTC, the fraction only when there is one and without trailing zeros (as PostgreSQL prints it)."""
    utc = as_utc(moment)
    fraction = f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def _local_text(moment: datetime, window: DayWindow) -> str:
    """The local time as spreadsheets read a date and time: ``2026-12-01 09:30:00``."""
    return window.local(moment).strftime("%Y-%m-%d %H:%M:%S")


def _record_values(record: Row[Any], window: DayWindow, detail_fields: Sequence[str]) -> list[Any]:
    detail = record.detail if isinstance(record.detail, dict) and not holds_nul(record.detail) else {}
    values: list[Any] = [
        record.id,
        _utc_text(record.decided_at),
        _local_text(record.decided_at, window),
        record.scene,
        record.venue_id,
        record.device_id,
        record.form,
        record.ok,
        record.code,
        record.online,
    ]
    for name in detail_fields:
        value = detail.get(name)
        values.append(value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    return values


def _cell(value: Any) -> str:
    """A CSV cell's text: null empty, booleans ``true``/``false``, text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(neutralise(value))


# PostgreSQL writes the records' CSV itself (COPY ... TO STDOUT), each cell made as _cell makes it:
# an order of magnitude faster than rows through Python for a day of a busy line.
def _safe_sql(expression: str) -> str:
    # ascii() of the first character: several times cheaper per row than left() compared with a list
    return (
        f"CASE WHEN ascii({expression}) IN (61, 43, 45, 64, 9, 13) "  # = + - @ tab CR
        f"THEN chr(39) || {expression} ELSE coalesce({expression}, '') END"
    )


def _copy_statement(detail_fields: Sequence[str], venues: Sequence[str] | None) -> str:
    # The detail's members (jsonb_to_record: looked up, the detail is stored parsed) each as text: a JSON
    # string as its value, any other value as jsonb writes it, as _record_values writes them (json.dumps).
    names = [f'"{name.replace(chr(34), chr(34) * 2)}"' for name in detail_fields]
    columns = [
        "r.id",
        # casts, not to_char (which costs a second a busy day): the same text as _utc_text and _local_text
        "replace((r.decided_at AT TIME ZONE 'UTC')::text, ' ', 'T') || 'Z'",
        "date_trunc('second', r.decided_at AT TIME ZONE %(zone)s)::text",
        *(_safe_sql(f"r.{name}") for name in ("scene", "venue_id", "device_id", "form")),
        "CASE WHEN r.ok THEN 'true' ELSE 'false' END",
        _safe_sql("r.code"),
        "CASE WHEN r.online THEN 'true' ELSE 'false' END",
        *(_safe_sql(f"d.{name}") for name in names),
    ]
    detail = (
        # a detail that is no object is blank cells, as the roll-up counts it (jsonb holds no NUL: migration 0010)
        ", jsonb_to_record(CASE WHEN jsonb_typeof(r.detail) = 'object' THEN r.detail ELSE '{}' END) AS d("
        + ", ".join(f"{name} text" for name in names)
        + ")"
        if names
        else ""
    )
    venue_clause = " AND r.venue_id = ANY(%(venues)s)" if venues is not None else ""
    return (
        f"COPY (SELECT {', '.join(columns)} FROM {UsageRecord.__tablename__} AS r{detail} "
        f"WHERE r.decided_at >= %(start)s AND r.decided_at < %(end)s{venue_clause} ORDER BY r.decided_at, r.id) "
        "TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)"
    )


def _copied_rows(
    session: Session, window: DayWindow, venues: Sequence[str] | None, detail_fields: Sequence[str]
) -> Iterator[str]:
    parameters: dict[str, Any] = {"zone": window.zone.key, "start": window.start, "end": window.end}
    if venues is not None:
        parameters["venues"] = list(venues)
    driver: Any = session.connection().connection.driver_connection  # psycopg's Connection
    with driver.cursor() as cursor:
        # JIT compiling the row expressions cost ~0.1 s a busy day and gains nothing on a streamed scan
        cursor.execute("SET LOCAL jit = off")
    with driver.cursor() as cursor, cursor.copy(_copy_statement(detail_fields, venues), parameters) as copy:
        pieces: list[bytes] = []
        for data in copy:  # a row per message
            pieces.append(bytes(data))
            if len(pieces) >= 2000:
                yield b"".join(pieces).decode("utf-8")
                pieces.clear()
        yield b"".join(pieces).decode("utf-8")


def csv_report(
    session: Session,
    window: DayWindow,
    venues: Sequence[str] | None,
    detail_fields: Sequence[str],
    *,
    bom: bool = True,
) -> Iterator[str]:
    """The day as CSV text, in pieces: the records (a header row, one row each), a blank row, the clearing.

    ``detail_fields``: the detail members given a column each (the installed
    scenes' declared ones). ``bom``: start with U+FEFF, so that Excel opens
    the UTF-8 as UTF-8 (without it, Excel in a Chinese locale reads GBK and
    shows station names as mojibake; LibreOffice and Python's ``utf-8-sig``
    read it either way). Every cell is quoted; booleans are
    ``true``/``false``; nulls are empty cells; times are UTC (RFC 3339) and
    local (``YYYY-MM-DD HH:MM:SS``, a spreadsheet's date and time).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    if bom:
        buffer.write("\ufeff")
    writer.writerow([*RECORD_COLUMNS, *detail_fields])
    if session.get_bind().dialect.name == "postgresql":
        yield flush()
        yield from _copied_rows(session, window, venues, detail_fields)
    else:
        for count, record in enumerate(_records(session, window, venues), 1):
            writer.writerow([_cell(value) for value in _record_values(record, window, detail_fields)])
            if count % 1000 == 0:
                yield flush()
    buffer.write("\n")
    writer.writerow(CLEARING_COLUMNS)
    for line in clearing(session, window, venues):
        writer.writerow([_cell(value) for value in line.cells()])
    yield flush()


def json_report(
    session: Session, window: DayWindow, venues: Sequence[str] | None, detail_fields: Sequence[str]
) -> Iterator[str]:
    """The day as one JSON object, in pieces: ``{"day", "timezone", "venues", "records": [...], "clearing": [...]}``.

    Values are as stored (JSON has no formulas to neutralise); ``detail`` is the record's.
    """
    head = {"day": window.day.isoformat(), "timezone": window.zone.key, "venues": list(venues) if venues else None}
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "records": ['
    pieces: list[str] = []
    for count, record in enumerate(_records(session, window, venues)):
        item = {
            "id": record.id,
            "decided_at": _utc_text(record.decided_at),
            "local_time": _local_text(record.decided_at, window),
            "scene": record.scene,
            "venue_id": record.venue_id,
            "device_id": record.device_id,
            "form": record.form,
            "ok": record.ok,
            "code": record.code,
            "online": record.online,
            "detail": record.detail if isinstance(record.detail, dict) else {},
        }
        pieces.append(("," if count else "") + json.dumps(item, ensure_ascii=False))
        if len(pieces) >= 1000:
            yield "".join(pieces)
            pieces.clear()
    yield "".join(pieces)
    clearing_rows = [
        dict(zip(CLEARING_COLUMNS, line.cells(), strict=True)) for line in clearing(session, window, venues)
    ]
    yield '], "clearing": ' + json.dumps(clearing_rows, ensure_ascii=False) + "}\n"


def detail_columns(fields_by_scene: Sequence[Sequence[str]]) -> list[str]:
    """The union of the scenes' declared detail members, in the order first declared (but a record's own column)."""
    columns: list[str] = []
    for names in fields_by_scene:
        for name in names:
            if name not in columns and name not in RECORD_COLUMNS:
                columns.append(name)
    return columns
