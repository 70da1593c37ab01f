"""Scanners' health as their syncs report it: the ``Codeservice-Verifier-Status`` header. No Flask.

An offline verifier's sync sends, with each ``POST /api/v1/usage``::

    Codeservice-Verifier-Status: keys-age=120, revocations-age=30, clock-offset=-2, pending=5

an RFC 8941 (Structured Field Values) Dictionary whose members are
Integers, in seconds (``pending``: records still in its outbox); any member
may be absent. It is parsed strictly, by the RFC's algorithm: a field that is
not a valid Dictionary is ignored as a whole, a member that is not an
Integer (or an age below zero) is ignored alone, unknown members are
ignored, parameters are allowed and ignored. Nothing here ever refuses an
upload. The latest report is kept per scanner with the time it came, beside
the time of the scanner's last upload.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import ScannerHealth

__all__ = ["HEADER", "MEMBERS", "note_upload", "parse_status"]

HEADER = "Codeservice-Verifier-Status"
MEMBERS = {
    "keys-age": "keys_age", "revocations-age": "revocations_age", "clock-offset": "clock_offset", "pending": "pending"
}
"""The members read, and the columns they are kept in."""
SIGNED = frozenset({"clock-offset"})
MAX_FIELD = 1024
"""A longer field is ignored unread."""

_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_INTEGER = re.compile(r"-?[0-9]{1,15}")
_DECIMAL = re.compile(r"-?[0-9]{1,12}\.[0-9]{1,3}")
_NUMBER = re.compile(r"-?[0-9][0-9.]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_BYTES = re.compile(r":[A-Za-z0-9+/=]*:")
_STRING = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"')
_OWS = re.compile(r"[ \t]*")
_SP = re.compile(r" *")


class _Invalid(Exception):
    pass


def parse_status(value: str | None) -> dict[str, int] | None:
    """The known Integer members of the field, or None when it is absent or not a valid Dictionary."""
    if value is None or len(value) > MAX_FIELD or not value.isascii():
        return None
    text = value.strip(" ")
    try:
        members = _dictionary(text)
    except _Invalid:
        return None
    status: dict[str, int] = {}
    for key, item in members.items():
        if key in MEMBERS and type(item) is int and (item >= 0 or key in SIGNED):
            status[MEMBERS[key]] = item
    return status


def _dictionary(text: str) -> dict[str, object]:
    members: dict[str, object] = {}
    at = 0
    while at < len(text):
        key_match = _KEY.match(text, at)
        if key_match is None:
            raise _Invalid
        key, at = key_match.group(), key_match.end()
        if at < len(text) and text[at] == "=":
            if at + 1 < len(text) and text[at + 1] == "(":
                item, at = _inner_list(text, at + 1)
            else:
                item, at = _bare_item(text, at + 1)
        else:
            item = True
        at = _parameters(text, at)
        members[key] = item  # a repeated key: the last one wins (RFC 8941 4.2.2)
        at = _OWS.match(text, at).end()  # type: ignore[union-attr]  # matches the empty string
        if at >= len(text):
            return members
        if text[at] != ",":
            raise _Invalid
        at = _OWS.match(text, at + 1).end()  # type: ignore[union-attr]
        if at >= len(text):
            raise _Invalid  # a trailing comma
    return members


def _bare_item(text: str, at: int) -> tuple[object, int]:
    if text.startswith("?0", at) or text.startswith("?1", at):
        return text[at + 1] == "1", at + 2
    number = _NUMBER.match(text, at)
    if number is not None:
        found = number.group()
        if _INTEGER.fullmatch(found):
            return int(found), number.end()
        if _DECIMAL.fullmatch(found):
            return float(found), number.end()
        raise _Invalid
    for pattern in (_STRING, _TOKEN, _BYTES):
        match = pattern.match(text, at)
        if match is not None:
            return match.group(), match.end()
    raise _Invalid


def _inner_list(text: str, at: int) -> tuple[object, int]:
    at += 1  # "("
    items: list[object] = []
    while at < len(text):
        at = _SP.match(text, at).end()  # type: ignore[union-attr]
        if at < len(text) and text[at] == ")":
            return items, _parameters(text, at + 1)
        item, at = _bare_item(text, at)
        items.append(item)
        at = _parameters(text, at)
        if at < len(text) and text[at] not in " )":
            raise _Invalid
    raise _Invalid


def _parameters(text: str, at: int) -> int:
    while at < len(text) and text[at] == ";":
        at = _SP.match(text, at + 1).end()  # type: ignore[union-attr]
        key = _KEY.match(text, at)
        if key is None:
            raise _Invalid
        at = key.end()
        if at < len(text) and text[at] == "=":
            _, at = _bare_item(text, at + 1)
    return at


def note_upload(session: Session, scanner_id: int, header: str | None, *, now: datetime) -> None:
    """Keep the upload's time and, when the header reads, its report (absent members become unknown); committed.

    One upsert; a field that does not read leaves the previous report as it was.
    """
    status = parse_status(header)
    values: dict[str, Any] = {"scanner_id": scanner_id, "last_upload_at": now.astimezone(UTC)}
    if status:  # an empty field tells nothing either
        values["reported_at"] = values["last_upload_at"]
        for column in MEMBERS.values():
            values[column] = status.get(column)
    table = cast(Table, ScannerHealth.__table__)  # a mapped class's table is typed as any FromClause
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values(values)
    update = {name: statement.excluded[name] for name in values if name != "scanner_id"}
    session.execute(statement.on_conflict_do_update(index_elements=["scanner_id"], set_=update))
    session.commit()
