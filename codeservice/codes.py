"""A logged-in resident's live code, as ``GET /api/v1/code`` sends it and the /code page renders it."""

from __future__ import annotations

import time
from typing import Any

from flask import current_app

from . import auth, observability, qr
from .context import key_store
from .errors import CodeRevoked
from .issuance import issue_code
from .residents import code_category

# Ask for the next code a little before this one expires, so a phone with a
# slow connection never shows an expired code.
REFRESH_MARGIN_SECONDS = 10


def live_code() -> tuple[str, int]:
    """A new code for the current resident and when it expires; :class:`CodeRevoked` if codes are no longer issued."""
    resident = auth.current_resident()
    if resident.revoked_at is not None:
        raise CodeRevoked()
    now = int(time.time())
    config = current_app.config
    token = issue_code(
        key_store().signer(),
        sub=resident.code_id,
        scopes=config["ISSUED_SCOPES"],
        category=code_category(resident, now, senior_age=config["SENIOR_AGE"]),
        now=now,
        ttl=config["CODE_TTL"],
        issuer=config["ISSUER"],
    )
    return token, now + config["CODE_TTL"]


def code_payload(shown_as: str = "json") -> dict[str, Any]:
    """A fresh code as ``GET /api/v1/code`` sends it; the /code page renders the same, counted as ``page``."""
    token, expires_at = live_code()
    observability.record_code_issued(shown_as)
    ttl = current_app.config["CODE_TTL"]
    return {
        "token": token,
        "expires_at": expires_at,
        "refresh_after": expires_at - min(REFRESH_MARGIN_SECONDS, ttl // 3),
        "qr_svg": qr.render_svg(token),
    }
