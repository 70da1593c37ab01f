"""Usage records (contract section 5): offline uploads and each resident's history. No Flask.

Uploads (``POST /api/v1/usage``)
    A batch is ``{"records": [...]}`` of at most :data:`MAX_BATCH` records,
    each with exactly the contract's eleven members, ``form`` optional. Every record is checked
    before anything is written, and one bad record refuses the whole batch
    (``invalid_usage_record``, its ``field`` naming the record and member, as
    ``records[3].decided_at``), so a scanner never has to work out which part
    of a batch landed. What a record may hold:

    ==============  ==================================================================
    ``id``          a UUID, hyphenated (any case; kept in lower case): the idempotency key
    ``scene``       null, or one of the scenes the uploading scanner's key names
    ``venue_id``,   null or a string of at most 100 characters, and otherwise ignored:
    ``device_id``   a record is always attributed to the uploading key's venue and device
    ``sub``,        null or base64url text of 1 to 64 characters (what codes carry)
    ``jti``
    ``decided_at``  RFC 3339 with a zone (``Z`` or ``+08:00``), at most
                    :data:`MAX_CLOCK_AHEAD` ahead of the service's clock and at most
                    :data:`MAX_AGE` old
    ``ok``          a JSON boolean, true exactly when ``code`` is ``accepted``
    ``code``        a decision code: ``[a-z][a-z0-9_]*``, at most 32 characters (third-party
                    scenes have codes of their own, so any such name is taken)
    ``detail``      a JSON object: finite numbers, valid Unicode, no NUL, nested at most
                    :data:`MAX_DETAIL_DEPTH` deep, at most :data:`MAX_DETAIL_CHARS` as
                    stored (compact JSON, non-ASCII escaped); and then only members its
                    scene declares, each as declared (``verifiers.check_detail``:
                    ``records[3].detail.station`` names a bad one). A scene that declares
                    none, or a null ``scene``, takes only ``{}``; a ``venue_id`` in it is
                    the uploading key's venue or nothing
    ``form``        ``online``, ``device`` or ``paper`` (contract section 9); a record
                    without it is an ``online`` one
    ==============  ==================================================================

    Records are inserted with ``ON CONFLICT (id) DO NOTHING`` in one
    transaction (PostgreSQL: one statement carrying the whole batch as one
    parameter; SQLite: one executemany): a record already stored (online or
    uploaded before, by any scanner) counts as a duplicate and is left as it
    was; an id repeated inside one batch counts once as accepted (its first
    occurrence) and then as a duplicate. Nothing is built per row but a dict:
    no ORM objects, and each detail is encoded to JSON once.

History (``GET /api/v1/me/usage`` and the ``/history`` page)
    A resident's own records (``sub`` = their code id), newest first by
    ``(decided_at, id)``, in pages; ``next`` is an opaque cursor for the page
    after, or None at the end. Of a record's detail a history holds only what
    :func:`history_detail` keeps: the members its scene declares, with values
    the declaration allows (records stored before uploads were checked, or of
    a scene since uninstalled, may hold more), and a ``venue_id`` only where
    it is the record's own venue.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import CursorResult, String, Table, bindparam, func, literal, select, text, tuple_
from sqlalchemy.orm import Session

from verifiers import DetailField, InvalidDetail, check_detail, declared_detail
from verifiers.contract import FORMS
from verifiers.decision import USAGE_RECORD, USAGE_RECORD_FIELDS
from verifiers.shapes import Member
from verifiers.verifier import CHINA_STANDARD_TIME

from .errors import BatchTooLarge, InvalidCursor, InvalidLimit, InvalidUsageRecord
from .models import UsageRecord
from .scan_store import dialect_insert
from .usage_rollup import roll_up

MAX_BATCH = 1000
MAX_CLOCK_AHEAD = timedelta(minutes=5)
"""How far ahead of the service's clock a scanner's clock may run."""
MAX_AGE = timedelta(days=400)
"""Older records are refused: a scanner offline for over a year has a broken clock or outbox."""
MAX_DETAIL_CHARS = 8192
"""A detail's size as stored: compact JSON with non-ASCII escaped (about 1300 Chinese characters)."""
MAX_DETAIL_DEPTH = 16
"""Objects and arrays nested deeper than this are refused: reading them back must never recurse far."""
MAX_NAME = 100  # venue_id and device_id, as the scanners table holds them
DEFAULT_LIMIT = 50
MAX_LIMIT = 200

RECORD_FIELDS = USAGE_RECORD_FIELDS  # the contract's members, as the offline verifier writes them
OPTIONAL_FIELDS = tuple(member.name for member in USAGE_RECORD if not member.required)
"""Members an uploaded record may leave out: a record without ``form`` is an ``online`` one (contract section 5)."""
UPLOAD: tuple[Member, ...] = (Member("records", {"type": "array", "maxItems": MAX_BATCH}),)
"""An upload's body (``POST /api/v1/usage``): ``{"records": [...]}``, each a usage record."""
_FIELD_SET = frozenset(RECORD_FIELDS)
_REQUIRED_SET = _FIELD_SET - frozenset(OPTIONAL_FIELDS)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}").fullmatch
_BASE64URL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch
_DECISION_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}").fullmatch
# RFC 3339 section 5.6 date-time; "T" and "Z" may be lower case (section 5.6, note).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
).fullmatch
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,120}").fullmatch
_CURSOR_CONTENT = re.compile(r"([0-9]{1,18}):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})").fullmatch
_LIMIT = re.compile(r"[0-9]{1,6}").fullmatch
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_USAGE = cast(Table, UsageRecord.__table__)  # a mapped class's table is typed as any FromClause
_DETAIL_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


# -- upload ---------------------------------------------------------------------------------


def validate_batch(
    records: Sequence[Any],
    *,
    scanner_id: int,
    venue_id: str,
    device_id: str,
    scenes: Mapping[str, Sequence[DetailField]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The batch as rows to insert, or :class:`InvalidUsageRecord` for its first bad record.

    ``scenes`` are those the uploading key names, each with the fields its
    usage detail declares (none for a scene not installed here).
    Attribution (venue, device, scanner) is the uploading key's, whatever the
    records say; ``online`` is False and ``received_at`` is ``now``; ``id`` is
    in lower case and ``detail`` is already its JSON text (encoded once, here).
    """
    if len(records) > MAX_BATCH:
        raise BatchTooLarge(f"a batch holds at most {MAX_BATCH} records, this one {len(records)}")
    earliest, latest = now - MAX_AGE, now + MAX_CLOCK_AHEAD
    scene_names = frozenset(scenes)
    rows = []
    for index, record in enumerate(records):
        if type(record) is not dict:
            raise InvalidUsageRecord(index, None, "a usage record must be a JSON object")
        if record.keys() != _FIELD_SET and record.keys() != _REQUIRED_SET:
            _refuse_members(index, record)
        record_id = record["id"]
        if type(record_id) is not str or not _UUID(record_id):
            raise InvalidUsageRecord(index, "id", "must be a UUID such as 0b7e4f02-8c2d-4f6a-9a41-3e5c2d1b0a99")
        scene = record["scene"]
        if scene is not None and (type(scene) is not str or scene not in scene_names):
            raise InvalidUsageRecord(
                index, "scene", f"must be null or a scene this scanner's key names ({', '.join(sorted(scene_names))})"
            )
        for name in ("venue_id", "device_id"):
            value = record[name]
            if value is not None and (type(value) is not str or len(value) > MAX_NAME):
                raise InvalidUsageRecord(index, name, f"must be null or a string of at most {MAX_NAME} characters")
        for name in ("sub", "jti"):
            value = record[name]
            if value is not None and (type(value) is not str or not _BASE64URL_ID(value)):
                raise InvalidUsageRecord(index, name, "must be null or base64url text of 1 to 64 characters")
        decided_at = _decided_at(index, record["decided_at"])
        if not earliest <= decided_at <= latest:
            raise InvalidUsageRecord(
                index,
                "decided_at",
                "is in the future by the service's clock; check the scanner's clock"
                if decided_at > latest
                else f"is older than {MAX_AGE.days} days",
            )
        ok, code = record["ok"], record["code"]
        if type(code) is not str or not _DECISION_CODE(code):
            raise InvalidUsageRecord(index, "code", "must be a decision code: a-z, 0-9 and _, at most 32 characters")
        if type(ok) is not bool:
            raise InvalidUsageRecord(index, "ok", "must be true or false")
        if ok is not (code == "accepted"):
            raise InvalidUsageRecord(index, "ok", "must be true exactly when code is 'accepted'")
        detail = record["detail"]
        if type(detail) is not dict:
            raise InvalidUsageRecord(index, "detail", "must be a JSON object")
        detail_json = _detail_json(index, detail) if detail else "{}"
        _check_declared(index, detail, scenes.get(scene, ()) if scene is not None else (), venue_id)
        form = record.get("form", "online")
        if type(form) is not str or form not in FORMS:
            raise InvalidUsageRecord(index, "form", f"must be one of {', '.join(FORMS)}, or left out (online)")
        rows.append(
            {
                "id": record_id.lower(),
                "scene": scene,
                "venue_id": venue_id,
                "device_id": device_id,
                "sub": record["sub"],
                "jti": record["jti"],
                "decided_at": decided_at,
                "ok": ok,
                "code": code,
                "detail": detail_json,
                "scanner_id": scanner_id,
                "online": False,
                "received_at": now,
                "form": form,
            }
        )
    return rows


def _refuse_members(index: int, record: dict[str, Any]) -> None:
    for name in RECORD_FIELDS:
        if name not in record and name not in OPTIONAL_FIELDS:
            raise InvalidUsageRecord(index, name, "is missing")
    extra = sorted(str(name) for name in record.keys() - _FIELD_SET)
    name = extra[0][:64]
    raise InvalidUsageRecord(index, name, f"is not a member of usage records (they have {', '.join(RECORD_FIELDS)})")


def _check_declared(index: int, detail: dict[str, Any], fields: Sequence[DetailField], venue_id: str) -> None:
    """Only the members the record's scene declares, as declared; and no venue but the uploader's."""
    try:
        check_detail(fields, detail)
    except InvalidDetail as refused:
        raise InvalidUsageRecord(index, f"detail.{refused.field[:64]}", refused.problem) from None
    claimed = detail.get("venue_id")
    if claimed is not None and claimed != venue_id:
        raise InvalidUsageRecord(
            index,
            "detail.venue_id",
            f"must be this scanner's venue ({venue_id}) or left out: a record cannot claim another venue",
        )


def _decided_at(index: int, value: Any) -> datetime:
    if type(value) is str and _RFC3339(value):
        text = value.upper()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            return datetime.fromisoformat(text).astimezone(UTC)
        except (ValueError, OverflowError):
            pass  # a month 13, a 24:00, a leap second: not a time we can store
    raise InvalidUsageRecord(
        index, "decided_at", "must be an RFC 3339 time with a zone, such as 2026-11-18T11:06:40.123Z"
    )


def _detail_json(index: int, detail: dict[str, Any]) -> str:
    """The detail as the JSON text to store, if the databases take it back as it was."""
    try:
        text = _DETAIL_JSON(detail)
    except (ValueError, RecursionError):  # NaN or Infinity; nesting deeper than anyone needs
        raise InvalidUsageRecord(index, "detail", "must be JSON with finite numbers") from None
    if len(text) > MAX_DETAIL_CHARS:
        raise InvalidUsageRecord(
            index, "detail", f"must be at most {MAX_DETAIL_CHARS} characters as compact JSON (non-ASCII escaped)"
        )
    # Rare enough to check the slow way only when the escaped text hints at it.
    if text.count("[") + text.count("{") > MAX_DETAIL_DEPTH and _too_deep(detail, MAX_DETAIL_DEPTH):
        raise InvalidUsageRecord(index, "detail", f"must not nest objects and arrays over {MAX_DETAIL_DEPTH} deep")
    if "\\ud" in text and not _valid_unicode(detail):
        raise InvalidUsageRecord(index, "detail", "must be valid Unicode (a lone surrogate is not)")
    if "\\u0000" in text and holds_nul(detail):
        raise InvalidUsageRecord(index, "detail", "must not contain NUL characters")
    return text


def _too_deep(value: Any, allowed: int) -> bool:
    if isinstance(value, dict):
        return allowed == 0 or any(_too_deep(item, allowed - 1) for item in value.values())
    if isinstance(value, list):
        return allowed == 0 or any(_too_deep(item, allowed - 1) for item in value)
    return False


def _valid_unicode(detail: dict[str, Any]) -> bool:
    try:
        json.dumps(detail, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def holds_nul(value: Any) -> bool:
    """Whether a NUL character is anywhere in a JSON value, its keys included."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return False


def ingest(session: Session, rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Insert what is new, in one transaction: ``(accepted, duplicates)``.

    ``rows`` are :func:`validate_batch`'s. A row whose id is already stored,
    or came earlier in ``rows``, is a duplicate and changes nothing.
    """
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["id"], row)
    # In id order: two batches that overlap take their rows' locks in the same
    # order, so concurrent uploads wait for each other instead of deadlocking.
    ordered = [unique[record_id] for record_id in sorted(unique)]
    accepted = 0
    if ordered:
        if session.get_bind().dialect.name == "postgresql":
            accepted = _insert_postgresql(session, ordered)
        else:
            accepted = _insert_sqlite(session, ordered)
    session.commit()
    if accepted:
        roll_up(session)  # a batch's records counted in at once (PostgreSQL; SQLite's trigger did as they landed)
    return accepted, len(rows) - accepted


def _insert_sqlite(session: Session, rows: list[dict[str, Any]]) -> int:
    # One executemany; SQLite counts the rows it inserted, not those DO NOTHING skipped.
    # ``detail`` is already JSON text (validate_batch wrote it): bound as is, not encoded again.
    statement = (
        dialect_insert(session, _USAGE)
        .values(detail=bindparam("detail", type_=String()))
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return cast(CursorResult[Any], session.execute(statement, rows)).rowcount  # an INSERT's result


# PostgreSQL: the whole batch as one JSON parameter, one statement, one round trip.
# (An executemany with RETURNING becomes one INSERT with 13 parameters a row,
# which psycopg and the server parse several times slower than the rows take to insert.)
# Each detail travels as text inside the batch's JSON and is parsed once, into jsonb (migration 0010).
_POSTGRESQL_INSERT = text(
    f"""
    INSERT INTO {_USAGE.name} (id, scene, venue_id, device_id, sub, jti, decided_at, ok, code, detail,
                               scanner_id, online, received_at, form)
    SELECT r.id, r.scene, :venue_id, :device_id, r.sub, r.jti, r.decided_at, r.ok, r.code, CAST(r.detail AS jsonb),
           :scanner_id, false, :received_at, r.form
    FROM json_to_recordset(CAST(:records AS json)) AS r(
        id varchar, scene varchar, sub varchar, jti varchar, decided_at timestamptz, ok boolean, code varchar,
        detail text, form varchar)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
    """
)


def _insert_postgresql(session: Session, rows: list[dict[str, Any]]) -> int:
    first = rows[0]  # attribution and receipt are the batch's, the same in every row
    records = json.dumps(
        [
            {
                "id": row["id"],
                "scene": row["scene"],
                "sub": row["sub"],
                "jti": row["jti"],
                "decided_at": row["decided_at"].isoformat(),
                "ok": row["ok"],
                "code": row["code"],
                "detail": row["detail"],
                "form": row.get("form", "online"),  # rows made without it (tests, old callers) are online
            }
            for row in rows
        ],
        separators=(",", ":"),
    )
    result = session.execute(
        _POSTGRESQL_INSERT,
        {
            "records": records,
            "venue_id": first["venue_id"],
            "device_id": first["device_id"],
            "scanner_id": first["scanner_id"],
            "received_at": first["received_at"],
        },
    )
    return len(result.all())


# -- history --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryPage:
    rows: list[Any]
    """Rows with every column of ``usage_records``, newest first."""
    next: str | None
    """The cursor of the page after this one, or None when this is the last."""


def parse_limit(value: str | None) -> int:
    """``?limit=``: absent means :data:`DEFAULT_LIMIT`; otherwise 1 to :data:`MAX_LIMIT`, or :class:`InvalidLimit`."""
    if value is None:
        return DEFAULT_LIMIT
    if not _LIMIT(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidLimit(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(value)


def history(session: Session, sub: str, *, limit: int = DEFAULT_LIMIT, before: str | None = None) -> HistoryPage:
    """One page of the records whose ``sub`` is ``sub``, after the cursor ``before`` when given."""
    query = select(_USAGE).where(_USAGE.c.sub == sub)
    if before is not None:
        decided_at, record_id = decode_cursor(before)
        # A row comparison, with the columns' own types for the bound values.
        after = tuple_(literal(decided_at, _USAGE.c.decided_at.type), literal(record_id, _USAGE.c.id.type))
        query = query.where(tuple_(_USAGE.c.decided_at, _USAGE.c.id) < after)
    query = query.order_by(_USAGE.c.decided_at.desc(), _USAGE.c.id.desc()).limit(limit + 1)
    rows = list(session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return HistoryPage(rows, encode_cursor(rows[-1]) if more else None)


@dataclass(frozen=True)
class DayCounts:
    """A scanner's decisions since local midnight."""

    accepted: int
    refused: int
    since: datetime


def local_midnight(now: datetime, tz: tzinfo = CHINA_STANDARD_TIME) -> datetime:
    """The start of ``now``'s local day (China Standard Time, as the scenes' days), in UTC."""
    local = now.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def scanner_day_counts(session: Session, scanner_id: int, now: datetime) -> DayCounts:
    """How many of ``scanner_id``'s decisions since local midnight were accepted and refused (online and uploaded)."""
    since = local_midnight(now)
    query = (
        select(_USAGE.c.ok, func.count())
        .where(_USAGE.c.scanner_id == scanner_id, _USAGE.c.decided_at >= literal(since, _USAGE.c.decided_at.type))
        .group_by(_USAGE.c.ok)
    )
    counts = {bool(ok): int(count) for ok, count in session.execute(query)}
    return DayCounts(counts.get(True, 0), counts.get(False, 0), since)


def utc(value: datetime) -> datetime:
    """A stored time as aware UTC (SQLite gives it back without its zone)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    """``2026-11-18T11:06:40.123Z``; microseconds only when the time has them."""
    value = utc(value)
    fraction = f"{value.microsecond // 1000:03d}" if value.microsecond % 1000 == 0 else f"{value.microsecond:06d}"
    return f"{value:%Y-%m-%dT%H:%M:%S}.{fraction}Z"


def history_detail(row: Any, fields: Sequence[DetailField]) -> dict[str, Any]:
    """What a resident's history holds of a stored record's detail.

    ``fields`` are the record's scene's declaration: only its members, with
    values it allows, and a ``venue_id`` only where it is the record's venue
    (the scanner's). Uploads are checked the same way; this also covers
    records stored before they were, and scenes since uninstalled.
    """
    detail = declared_detail(fields, row.detail) if isinstance(row.detail, dict) else {}
    if "venue_id" in detail and detail["venue_id"] not in (None, row.venue_id):
        del detail["venue_id"]
    return detail


def record_json(row: Any, fields: Sequence[DetailField]) -> dict[str, Any]:
    """A stored record as contract section 5 has it, for its resident: see :func:`history_detail`."""
    return {
        "id": row.id,
        "scene": row.scene,
        "venue_id": row.venue_id,
        "device_id": row.device_id,
        "sub": row.sub,
        "jti": row.jti,
        "decided_at": rfc3339(row.decided_at),
        "ok": row.ok,
        "code": row.code,
        "detail": history_detail(row, fields),
        "form": row.form,
    }


def encode_cursor(row: Any) -> str:
    delta = utc(row.decided_at) - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return base64.urlsafe_b64encode(f"{micros}:{row.id}".encode("ascii")).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(decided_at, id)`` of the last record of the page before, or :class:`InvalidCursor`."""
    if not _CURSOR(cursor):
        raise InvalidCursor()
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise InvalidCursor() from None
    match = _CURSOR_CONTENT(text)
    if match is None:
        raise InvalidCursor()
    try:
        decided_at = _EPOCH + timedelta(microseconds=int(match.group(1)))
    except OverflowError:
        raise InvalidCursor() from None
    return decided_at, match.group(2)
