"""A resident's live code: JSON with an inline SVG, or a PNG."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from .. import observability, qr
from ..codes import code_payload, live_code
from .blueprint import api

NO_STORE = "no-store"


@api.get("/code")
def code() -> Any:
    response = jsonify(code_payload())
    response.headers["Cache-Control"] = NO_STORE
    return response


@api.get("/code.png")
def code_png() -> Response:
    token, _expires_at = live_code()
    observability.record_code_issued("png")
    response = Response(qr.render_png(token), mimetype="image/png")
    response.headers["Cache-Control"] = NO_STORE
    return response
