"""The decision of contract section 2, and the usage record of section 5.

Both name the code's ``form`` (``online``, ``device`` or ``paper``: section
9). An accepted paper decision also carries ``check_id``, the holder hint
the staff compare with the ID card; its JSON has ``check_id`` on every
decision (null but there), so that its shape never depends on the outcome.
A usage record never holds ``check_id``: it leaves the scanner at each sync.
"""

from __future__ import annotations

import time
import os
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Any


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
        return {
            "ok": self.ok,
            "code": self.code,
            "scene": self.scene,
            "form": self.form,
            "sub": self.sub,
            "jti": self.jti,
            "exp": self.exp,
            "check_id": self.check_id,
            "detail": self.detail,
            "message": self.message,
        }


@lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def rfc3339(timestamp: float) -> str:
    """UTC with milliseconds: ``2026-11-27T03:04:05.678Z``."""
    seconds = int(timestamp)
    return f"{_utc_second(seconds)}.{int((timestamp - seconds) * 1000):03d}Z"


def new_record_id() -> str:
    """A random (version 4) UUID as text; the usage record's idempotency key.

    Formatted by hand: ``str(uuid.uuid4())`` costs several times more, on a
    path that runs once per scan.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def usage_record(
    decision: Decision, *, venue_id: str | None, device_id: str | None, decided_at: float
) -> dict[str, Any]:
    """One record per decision; ``id`` is its idempotency key when synced. Never the decision's ``check_id``."""
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
