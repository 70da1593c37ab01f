"""Registration and sessions: ``POST /api/v1/residents``, ``POST`` and ``DELETE /api/v1/session``.

A resident is shown as ``{"name_masked", "category", "id_type"}``: never the
ID number, the phone, the full name or the code id.

Registering does not log in: the client logs in with the phone and password
it has just chosen. Every session then starts at the one place that counts
failed attempts, and a registration form cannot be used to obtain a session
without the password round trip.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app, jsonify

from .. import auth, db, device_cookies, residents
from ..context import data_keys
from ..models import Resident
from ..http import json_body
from .blueprint import api

REGISTRATION_FIELDS = {"name": str, "id_type": str, "id_number": str, "phone": str, "password": str}
LOGIN_FIELDS = {"phone": str, "password": str}


def resident_view(resident: Resident) -> dict[str, Any]:
    """What the API shows of a resident (to that resident)."""
    return {
        "name_masked": resident.name,
        "category": residents.code_category(
            resident, int(time.time()), current_app.config.get("SENIOR_AGE", residents.DEFAULT_SENIOR_AGE)
        ),
        "id_type": resident.id_type,
    }


@api.post("/residents")
def register() -> Any:
    body = json_body(REGISTRATION_FIELDS)
    resident = residents.register(db.session(), data_keys(), body, now=datetime.now(UTC))
    response = jsonify(resident=resident_view(resident))
    response.status_code = 201
    return response


@api.post("/session")
def log_in() -> Any:
    body = json_body(LOGIN_FIELDS)
    config = current_app.config
    resident = residents.authenticate(
        db.session(),
        data_keys(),
        body["phone"],
        body["password"],
        now=datetime.now(UTC),
        max_failures=config.get("LOGIN_MAX_FAILURES", residents.DEFAULT_MAX_FAILURES),
        cooldown_seconds=config.get("LOGIN_COOLDOWN", residents.DEFAULT_COOLDOWN_SECONDS),
        device_cookie=device_cookies.presented(),
    )
    auth.log_in(resident)
    response = jsonify(resident=resident_view(resident))
    response.headers["Cache-Control"] = "no-store"
    device_cookies.remember(response, resident)
    return response


@api.delete("/session")
def log_out() -> Response:
    """End the session, and every copy of its cookie; 204 even when there was none."""
    auth.log_out()
    response = Response(status=204)
    del response.headers["Content-Type"]  # no content, so nothing to describe (RFC 9110 section 15.3.5)
    return response
