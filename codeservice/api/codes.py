"""A resident's live code: JSON with an inline SVG, or a PNG."""

from __future__ import annotations

import time
from typing import Any

from flask import Response, current_app, jsonify

from .. import auth, observability, qr
from ..issuance import issue_code
from ..context import key_store
from ..residents import code_category
from ..errors import CodeRevoked
from . import api

NO_STORE = "no-store"
# Ask for the next code a little before this one expires, so a phone with a
# slow connection never shows an expired code.
REFRESH_MARGIN_SECONDS = 10


def _live_code() -> tuple[str, int]:
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
    token, expires_at = _live_code()
    observability.record_code_issued(shown_as)
    ttl = current_app.config["CODE_TTL"]
    return {
        "token": token,
        "expires_at": expires_at,
        "refresh_after": expires_at - min(REFRESH_MARGIN_SECONDS, ttl // 3),
        "qr_svg": qr.render_svg(token),
    }


@api.get("/code")
def code() -> Any:
    response = jsonify(code_payload())
    response.headers["Cache-Control"] = NO_STORE
    return response


@api.get("/code.png")
def code_png() -> Response:
    token, _expires_at = _live_code()
    observability.record_code_issued("png")
    response = Response(qr.render_png(token), mimetype="image/png")
    response.headers["Cache-Control"] = NO_STORE
    return response
