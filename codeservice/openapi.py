"""The OpenAPI 3.1 description of the HTTP API (filled in with the API)."""

from __future__ import annotations

from typing import Any

from flask import Flask


def openapi_document(app: Flask) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "codeservice", "version": "1"}, "paths": {}}
