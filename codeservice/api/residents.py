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

from flask import Flask, Response, current_app, jsonify

from .. import auth, db, device_cookies, residents
from ..context import data_keys
from ..http import json_body
from ..identity import REGISTRATION
from ..models import Resident
from ..openapi.operations import (
    SESSION_SCHEME,
    described_by,
    operation,
    resident_envelope,
)
from ..openapi.schemas import headers, json_content
from .blueprint import api


def resident_view(resident: Resident) -> dict[str, Any]:
    """What the API shows of a resident (to that resident)."""
    return {
        "name_masked": resident.name,
        "category": residents.code_category(
            resident, int(time.time()), current_app.config.get("SENIOR_AGE", residents.DEFAULT_SENIOR_AGE)
        ),
        "id_type": resident.id_type,
    }


def _register_operation(_app: Flask) -> dict[str, Any]:
    return operation(
        "registerResident",
        "Register a resident",
        "residents",
        {
            "201": {
                "description": "Registered. This does not log in: log in with the phone and password.",
                "content": json_content(resident_envelope()),
            }
        },
        errors=("Taken", "InvalidField", "RateLimited"),
        request_schema="Registration",
        database=True,
    )


@api.post("/residents")
@described_by(_register_operation)
def register() -> Any:
    body = json_body(REGISTRATION)
    resident = residents.register(db.session(), data_keys(), body, now=datetime.now(UTC))
    response = jsonify(resident=resident_view(resident))
    response.status_code = 201
    return response


def _login_operation(app: Flask) -> dict[str, Any]:
    cookie = app.config["SESSION_COOKIE_NAME"]
    return operation(
        "logIn",
        "Log in with phone and password",
        "session",
        {
            "200": {
                "description": f"Logged in: the `{cookie}` cookie is set.",
                "headers": headers(Set_Cookie="SetSessionCookie", Cache_Control="CacheControlNoStore"),
                "content": json_content(resident_envelope()),
            }
        },
        # One 429 for both: the per-phone cool-down and the per-address rate limit.
        errors=("BadCredentials", "TooManyAttempts", "RateLimited"),
        request_schema="Login",
        database=True,
        description=(
            "A successful login also sets a device cookie (`codeservice_device`, `__Host-codeservice_device` "
            "when cookies are Secure; HttpOnly, SameSite=Strict, a year). A login that sends a valid one for "
            "its phone is judged by that cookie's own failed attempts alone, so no one else's wrong passwords "
            "lock this client out; any other login meets the phone's cool-down (`too_many_attempts`)."
        ),
    )


@api.post("/session")
@described_by(_login_operation)
def log_in() -> Any:
    body = json_body(residents.LOGIN)
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


def _logout_operation(app: Flask) -> dict[str, Any]:
    cookie = app.config["SESSION_COOKIE_NAME"]
    described = operation(
        "logOut",
        "Log out",
        "session",
        {
            "204": {
                "description": (
                    f"Logged out, even without a session. The `{cookie}` cookie is cleared and every "
                    "other copy of it stops working."
                ),
            }
        },
        database=True,  # with a session: it reads and updates the resident
    )
    # With or without a session: the cookie is used when present.
    described["security"] = [{SESSION_SCHEME: []}, {}]
    return described


@api.delete("/session")
@described_by(_logout_operation)
def log_out() -> Response:
    """End the session, and every copy of its cookie; 204 even when there was none."""
    auth.log_out()
    response = Response(status=204)
    del response.headers["Content-Type"]  # no content, so nothing to describe (RFC 9110 section 15.3.5)
    return response
