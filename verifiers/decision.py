"""The decision of contract section 2, and the usage record of section 5.

Both name the code's ``form`` (``online``, ``device`` or ``paper``: section
9). An accepted paper decision also carries ``check_id``, the holder hint
the staff compare with the ID card; its JSON has ``check_id`` on every
decision (null but there), so that its shape never depends on the outcome.
A usage record never holds ``check_id``: it leaves the scanner at each sync.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from typing import Any

from .contract import FORMS
from .shapes import Member, names

_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_ID = {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_-]{1,64}$"}
_FORM = {"type": "string", "enum": list(FORMS)}

DECISION: tuple[Member, ...] = (
    Member("ok", {"type": "boolean"}, "True only for `accepted`."),
    Member("code", {"type": "string"}, "`accepted`, or the code of the first rule that failed, or a scene's own."),
    Member("scene", _NULLABLE_STRING, "The scene, or null for an unknown one."),
    Member("form", _FORM, "The code's form, by its prefix alone: `online` (a JWS), `device` (`RSD1:`) or "
           "`paper` (`RSP1:`), contract section 9."),
    Member("sub", _NULLABLE_STRING, "The resident's code id, once the signature is good."),
    Member("jti", _NULLABLE_STRING, "The code's id, once the signature is good; for a device code the "
           "credential's id, `-` and t; for a paper code the credential's id, the same at every scan."),
    Member("exp", {"type": ["integer", "null"]}, "The code's expiry, seconds since the epoch."),
    Member(
        "check_id",
        {"type": ["object", "null"], "properties": {"n": {"type": "string"}, "b": {"type": "string"},
                                                    "i": {"type": "string"}}},
        "An accepted paper code's holder hint, for the staff to compare with the ID card: `n` the masked name, "
        "`b` the birth month and day (MMDD, absent for other ID types than a resident ID), `i` the ID number's "
        "last 4 characters. Null on every other decision; never in a usage record.",
    ),
    Member("detail", {"type": "object"}, "The scene's usage detail."),
    Member("message", {"type": "string"}, "For people."),
)
"""A decision as JSON (contract section 2): what :meth:`Decision.to_dict` gives, member by member."""

USAGE_RECORD: tuple[Member, ...] = (
    Member("id", {"type": "string", "format": "uuid"}, "A UUID: the record's idempotency key."),
    Member("scene", _NULLABLE_STRING, "The scene, one the scanner's key names."),
    Member("venue_id", _NULLABLE_STRING, "The scanner's venue."),
    Member("device_id", _NULLABLE_STRING, "The scanner's device."),
    Member("sub", _NULLABLE_ID, "The resident's code id, once the code's signature was good."),
    Member("jti", _NULLABLE_ID, "The code's id, once the code's signature was good."),
    Member("decided_at", {"type": "string", "format": "date-time"}, "When the scanner decided: RFC 3339 with a zone."),
    Member("ok", {"type": "boolean"}, "True exactly when `code` is `accepted`."),
    Member("code", {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,31}$"}, "The decision's code."),
    Member("detail", {"type": "object"}, "The scene's usage detail: only the members its scene declares."),
    Member("form", _FORM, "The code's form (contract section 9): `online` (a JWS), `device` (`RSD1:`) or "
           "`paper` (`RSP1:`). An uploaded record without it is an `online` one; a stored record always has it.",
           required=False),
)
"""A usage record (contract section 5): what :func:`usage_record` gives, member by member."""

DECISION_FIELDS = names(DECISION)
USAGE_RECORD_FIELDS = names(USAGE_RECORD)
_decision_values = attrgetter(*DECISION_FIELDS)


@dataclass(slots=True)
class Decision:
    ok: bool
    code: str
    scene: str | None
    sub: str | None
    jti: str | None
    exp: int | None
    message: str
    detail: dict[str, Any] = field(default_factory=dict)
    record_id: str | None = None
    """The id of the usage record this decision was logged as."""
    form: str = "online"
    """The code's form, by its prefix alone: ``online`` (a JWS), ``device`` (``RSD1:``) or ``paper`` (``RSP1:``)."""
    check_id: dict[str, str] | None = None
    """Accepted paper codes only: the holder hint ``{"n", "b", "i"}`` to compare with the ID card; else None."""

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON: the members of :data:`DECISION`."""
        return dict(zip(DECISION_FIELDS, _decision_values(self), strict=True))


@lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


_MILLISECONDS = tuple(f".{milliseconds:03d}Z" for milliseconds in range(1000))


def rfc3339(timestamp: float) -> str:
    """UTC with milliseconds: ``2026-11-27T03:04:05.678Z``."""
    seconds = int(timestamp)
    milliseconds = int((timestamp - seconds) * 1000)
    if milliseconds < 0:  # before 1970: formatted as it always was
        return f"{_utc_second(seconds)}.{milliseconds:03d}Z"
    return _utc_second(seconds) + _MILLISECONDS[milliseconds]


_VARIANT = {digit: "89ab"[int(digit, 16) & 0b11] for digit in "0123456789abcdef"}


def new_record_id() -> str:
    """A random (version 4) UUID as text; the usage record's idempotency key.

    Formatted by hand: ``str(uuid.uuid4())`` costs several times more, on a
    path that runs once per scan.
    """
    h = os.urandom(16).hex()
    # RFC 9562: version 4 in the 13th hex digit, the variant (binary 10) in the top bits of the 17th
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def usage_record(
    decision: Decision, *, venue_id: str | None, device_id: str | None, decided_at: float
) -> dict[str, Any]:
    """One record per decision, the members of :data:`USAGE_RECORD` in order; ``id`` is its idempotency key when
    synced. Never the decision's ``check_id``."""
    return {
        "id": decision.record_id or new_record_id(),
        "scene": decision.scene,
        "venue_id": venue_id,
        "device_id": device_id,
        "sub": decision.sub,
        "jti": decision.jti,
        "decided_at": rfc3339(decided_at),
        "ok": decision.ok,
        "code": decision.code,
        "detail": decision.detail,
        "form": decision.form,
    }
