"""Public JSON routes outside /api/v1: the JWKS, liveness, the OpenAPI description."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..openapi import openapi_document
from ..context import key_store

blueprint = Blueprint("public", __name__)

# Scanners refresh their key set in the background; five minutes keeps a
# rotated key reaching them well within its publication grace period.
JWKS_MAX_AGE_SECONDS = 300


@blueprint.get("/.well-known/jwks.json")
def jwks() -> Response:
    body = json.dumps(key_store().jwks(), separators=(",", ":"), sort_keys=True).encode("utf-8")
    etag = hashlib.sha256(body).hexdigest()[:32]
    headers = {"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}", "ETag": f'"{etag}"'}
    if etag in request.if_none_match:
        return Response(status=304, headers=headers)
    return Response(body, mimetype="application/jwk-set+json", headers=headers)


@blueprint.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@blueprint.get("/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_document(current_app))
