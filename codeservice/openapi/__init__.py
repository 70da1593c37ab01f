"""The OpenAPI 3.1 description of the JSON API (contract section 4), served at ``/openapi.json``.

Built from data, each part where it is declared: each operation beside its
view (:mod:`.operations`: ``described_by``), collected from the app's URL
map; the error responses from the classes of :mod:`codeservice.errors`
(:mod:`.responses`); the schemas from the declared shapes and the installed
scenes (:mod:`.schemas`); the cookie name and code lifetime from the app's
configuration. ``tests/test_openapi.py`` checks that every JSON route is
described and nothing else; ``tests/test_error_shape.py`` that every error a
route sends is listed under its status.

The HTML pages (``/register``, ``/login``, ``/code``, ``/history``,
``/devices``, ``/scanner``) are not part of it: their views are not
described, nor the scanner page's own calls (``POST /scanner/session``,
``/scanner/logout``, ``/scanner/verify``: a session cookie and CSRF token, not
the API's key; the last takes ``POST /api/v1/verify``'s body).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask

from ..errors import MethodNotAllowed, NotFound
from ..extensions import SCENES
from .operations import SCANNER_SCHEME, SESSION_SCHEME, description_of
from .responses import (
    ERROR_RESPONSES,
    FIELD_ERROR_CODES,
    GENERAL_ERRORS,
    HEADERS,
    error_components,
)
from .schemas import component_schemas

__all__ = ["ERROR_RESPONSES", "FIELD_ERROR_CODES", "GENERAL_ERRORS", "openapi_document"]

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})  # Flask adds them to every GET / every route
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def openapi_document(app: Flask) -> dict[str, Any]:
    """The whole document for this app (its routes, cookie name, code lifetime and installed scenes)."""
    cookie = app.config["SESSION_COOKIE_NAME"]
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "codeservice",
            "version": API_VERSION,
            "summary": "Residents' live QR codes, and the keys that verify them offline.",
            "description": (
                "JSON over UTF-8. Every error is `{\"error\": {\"code\", \"message\"}}` (and `field` for "
                "an invalid field) with a 4xx status, or 503 when the database cannot be reached; `code` is "
                "stable, `message` is for people. "
                f"Any path not listed here answers 404 `{NotFound.code}`, a listed path with a method "
                f"it does not take 405 `{MethodNotAllowed.code}` (components/responses lists both)."
            ),
        },
        "paths": _paths(app),
        "components": {
            "schemas": component_schemas(app.extensions[SCENES]),
            "responses": error_components(),
            "headers": HEADERS,
            "parameters": {
                "IfNoneMatch": {
                    "name": "If-None-Match",
                    "in": "header",
                    "required": False,
                    "description": "Entity tags held (one, a list, or `*`); weak tags match too.",
                    "schema": {"type": "string"},
                }
            },
            "securitySchemes": {
                SESSION_SCHEME: {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": cookie,
                    "description": "Set by `POST /api/v1/session`, ended by `DELETE /api/v1/session`.",
                },
                SCANNER_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A scanner's key, from `flask --app codeservice scanners add`: it names the "
                        "scanner's venue, its device and the scenes it may verify, and whether it is "
                        "staffed (`--attended`: someone checks the ID card), the only kind at which a "
                        "paper code is accepted (elsewhere `attendant_required`)."
                    ),
                },
            },
        },
    }


def _paths(app: Flask) -> dict[str, dict[str, Any]]:
    """Each described view's operation, under its route's path and methods."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        build = description_of(app.view_functions[rule.endpoint])
        if build is None:
            continue
        path = paths.setdefault(_CONVERTER.sub(r"{\1}", rule.rule), {})
        for method in sorted((rule.methods or set()) - IMPLICIT_METHODS):
            path[method.lower()] = build(app)
    return paths
