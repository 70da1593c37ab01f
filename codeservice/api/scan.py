"""Scanners' endpoints: verify a code online."""

from __future__ import annotations

import random
from typing import Any

from flask import jsonify, request

from .. import db, observability, scanners
from ..errors import SceneNotPermitted, WrongFieldType
from ..scan_store import PURGE_EVERY, ScanConnection, ScannerRow, purge_expired
from ..scanning import scan_connection, verifier_for
from ..http import json_body
from .blueprint import api


def current_scanner(connection: ScanConnection | None = None) -> ScannerRow:
    """The scanner whose key the request carries (401 otherwise), read on ``connection`` or a short-lived one."""
    authorization = request.headers.get("Authorization")
    if connection is not None:
        return scanners.authenticate(connection, authorization)
    with scan_connection() as own:
        return scanners.authenticate(own, authorization)


@api.post("/verify")
def verify() -> Any:
    """A decision for any token, as 200; the usage is logged with it."""
    with scan_connection() as connection:
        scanner = current_scanner(connection)
        body = json_body({"token": str, "scene": str})
        context = body.get("context")
        if context is not None and not isinstance(context, dict):
            raise WrongFieldType("the field 'context' must be an object")
        if body["scene"] not in scanner.scenes:
            raise SceneNotPermitted(f"this scanner's key may verify {', '.join(scanner.scenes)} only")
        decision = verifier_for(connection, scanner).verify(body["token"], body["scene"], context)
    observability.record_verify_decision(body["scene"], decision.code)
    if random.random() < 1 / PURGE_EVERY:  # noqa: S311 - housekeeping, not security
        purge_expired(db.session())
    return jsonify(decision.to_dict())
