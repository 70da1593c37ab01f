"""Public JSON routes outside /api/v1: the JWKS, liveness, readiness, the OpenAPI description."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from .. import observability
from ..context import key_store
from ..keystore import JWK_SET_MEDIA_TYPE, JWKS_MAX_AGE_SECONDS
from ..openapi import openapi_document
from ..openapi.operations import conditional_get, described_by, operation
from ..openapi.schemas import json_content, ref

blueprint = Blueprint("public", __name__)


def _jwks_operation(_app: Flask) -> dict[str, Any]:
    return conditional_get(
        "getJwks",
        "The public keys that verify codes (RFC 7517)",
        "keys",
        what="The key of the signing key and of every key whose codes may still be valid, newest first.",
        content=json_content(ref("schemas", "JWKS"), JWK_SET_MEDIA_TYPE),
        max_age=JWKS_MAX_AGE_SECONDS,
        description="After a key rotation the set holds both keys until codes the old key signed have expired.",
    )


@blueprint.get("/.well-known/jwks.json")
@described_by(_jwks_operation)
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


def _healthz_operation(_app: Flask) -> dict[str, Any]:
    return operation(
        "getHealth",
        "Liveness",
        "service",
        {
            "200": {
                "description": "The service is up.",
                "content": json_content(
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ok"}},
                    }
                ),
            }
        },
    )


@blueprint.get("/healthz")
@described_by(_healthz_operation)
def healthz() -> Any:
    return jsonify(status="ok")


def _readyz_operation(_app: Flask) -> dict[str, Any]:
    # The checks codeservice.observability.readiness makes, in both answers.
    checks = {
        "type": "object",
        "required": list(observability.READINESS_CHECKS),
        "properties": {name: {"enum": ["ok", "failed"]} for name in observability.READINESS_CHECKS},
        "additionalProperties": False,
    }
    return operation(
        "getReadiness",
        "Readiness",
        "service",
        {
            "200": {
                "description": "The database answers and the signing key loads: send traffic.",
                "content": json_content(
                    {
                        "type": "object",
                        "required": ["status", "checks"],
                        "properties": {"status": {"const": "ready"}, "checks": checks},
                    }
                ),
            },
            "503": {
                "description": "A check failed (`checks` says which): send no traffic. Code: `not_ready`.",
                "content": json_content(
                    {
                        "type": "object",
                        "required": ["error", "checks"],
                        "properties": {
                            # The one error shape, with the checks beside it.
                            "error": {
                                "allOf": [
                                    {"$ref": "#/components/schemas/Error/properties/error"},
                                    {"properties": {"code": {"const": "not_ready"}}},
                                ]
                            },
                            "checks": checks,
                        },
                        "additionalProperties": False,
                    }
                ),
            },
        },
        description="Unlike `/healthz` (liveness, no dependencies), it checks the database and the signing key.",
    )


@blueprint.get("/readyz")
@described_by(_readyz_operation)
def readyz() -> Any:
    """Ready for traffic: the database answers and the signing key loads (503 otherwise)."""
    checks = observability.readiness()
    failed = [name for name, result in checks.items() if result != "ok"]
    if not failed:
        return jsonify(status="ready", checks=checks)
    error = {"code": "not_ready", "message": f"not ready: {', '.join(failed)} failed"}
    return jsonify(error=error, checks=checks), 503


def _openapi_operation(_app: Flask) -> dict[str, Any]:
    return operation(
        "getOpenApi",
        "This document",
        "service",
        {
            "200": {
                "description": "The OpenAPI 3.1 description of the JSON API.",
                "content": json_content({"type": "object"}),
            }
        },
    )


@blueprint.get("/openapi.json")
@described_by(_openapi_operation)
def openapi() -> Any:
    return jsonify(openapi_document(current_app))
