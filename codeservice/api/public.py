"""Public JSON routes outside /api/v1: the JWKS, liveness, readiness, the OpenAPI description."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from .. import observability
from ..openapi import openapi_document
from ..context import key_store
from ..keystore import JWK_SET_MEDIA_TYPE, JWKS_MAX_AGE_SECONDS

blueprint = Blueprint("public", __name__)


@blueprint.get("/.well-known/jwks.json")
def jwks() -> Response:
    """The key set, with a strong ETag of its bytes; 304 when ``If-None-Match`` holds that tag.

    ``If-None-Match`` is compared weakly (RFC 9110 section 13.1.2): a tag a proxy
    has weakened (``W/"..."``) still matches, as does ``*``, and any tag of a list.
    """
    body = json.dumps(key_store().jwks(), separators=(",", ":"), sort_keys=True).encode("utf-8")
    etag = hashlib.sha256(body).hexdigest()[:32]
    headers = {"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}", "ETag": f'"{etag}"'}
    if request.if_none_match.contains_weak(etag):
        return Response(status=304, headers=headers)
    return Response(body, mimetype=JWK_SET_MEDIA_TYPE, headers=headers)


@blueprint.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> Any:
    """Ready for traffic: the database answers and the signing key loads (503 otherwise)."""
    checks = observability.readiness()
    failed = [name for name, result in checks.items() if result != "ok"]
    if not failed:
        return jsonify(status="ready", checks=checks)
    error = {"code": "not_ready", "message": f"not ready: {', '.join(failed)} failed"}
    return jsonify(error=error, checks=checks), 503


@blueprint.get("/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_document(current_app))
