"""A resident's live code: JSON with an inline SVG, or a PNG."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify

from .. import observability, qr
from ..codes import REFRESH_MARGIN_SECONDS, code_payload, live_code
from ..openapi.operations import SESSION_SCHEME, described_by, operation
from ..openapi.schemas import headers, json_content, ref
from .blueprint import api

NO_STORE = "no-store"


def _code_operation(app: Flask) -> dict[str, Any]:
    ttl, scopes = app.config["CODE_TTL"], app.config["ISSUED_SCOPES"]
    return operation(
        "getCode",
        "A fresh code for the logged-in resident",
        "codes",
        {
            "200": {
                "description": (
                    f"A new code each call, valid for {ttl} s, for the scenes {', '.join(scopes)}. "
                    f"Fetch the next one at `refresh_after` (at most {REFRESH_MARGIN_SECONDS} s before `expires_at`)."
                ),
                "headers": headers(Cache_Control="CacheControlNoStore"),
                "content": json_content(ref("schemas", "Code")),
            }
        },
        errors=("NotAuthenticated", "CodeRevoked", "RateLimited"),
        auth=SESSION_SCHEME,
        database=True,
    )


@api.get("/code")
@described_by(_code_operation)
def code() -> Any:
    response = jsonify(code_payload())
    response.headers["Cache-Control"] = NO_STORE
    return response


def _code_png_operation(_app: Flask) -> dict[str, Any]:
    return operation(
        "getCodePng",
        "A fresh code as a QR code image",
        "codes",
        {
            "200": {
                "description": "The QR code (level M, 4-module quiet zone) whose text is a new code's token.",
                "headers": headers(Cache_Control="CacheControlNoStore"),
                "content": {"image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}}},
            }
        },
        errors=("NotAuthenticated", "CodeRevoked", "RateLimited"),
        auth=SESSION_SCHEME,
        database=True,
    )


@api.get("/code.png")
@described_by(_code_png_operation)
def code_png() -> Response:
    token, _expires_at = live_code()
    observability.record_code_issued("png")
    response = Response(qr.render_png(token), mimetype="image/png")
    response.headers["Cache-Control"] = NO_STORE
    return response
