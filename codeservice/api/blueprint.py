"""The ``/api/v1`` blueprint, which each route module of :mod:`codeservice.api` adds its routes to."""

from __future__ import annotations

from flask import Blueprint

api = Blueprint("api", "codeservice.api", url_prefix="/api/v1")
