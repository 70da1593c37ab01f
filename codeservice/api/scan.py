"""Scanners' endpoints: verify a code online."""

from __future__ import annotations

import random
from typing import Any

from flask import jsonify, request

from .. import db, observability, scanners
from ..errors import SceneNotPermitted, WrongFieldType
from ..scanning import PURGE_EVERY, purge_expired, verifier_for
from . import api, json_body


def current_scanner() -> Any:
    return scanners.authenticate(db.session(), request.headers.get("Authorization"))


@api.post("/verify")
def verify() -> Any:
    """A decision for any token, as 200; the usage is logged with it."""
    session = db.session()
    scanner = current_scanner()
    body = json_body({"token": str, "scene": str})
    context = body.get("context")
    if context is not None and not isinstance(context, dict):
        raise WrongFieldType("the field 'context' must be an object")
    if body["scene"] not in scanner.scenes:
        raise SceneNotPermitted(f"this scanner's key may verify {', '.join(scanner.scenes)} only")
    decision = verifier_for(session, scanner).verify(body["token"], body["scene"], context)
    observability.record_verify_decision(body["scene"], decision.code)
    if random.random() < 1 / PURGE_EVERY:  # noqa: S311 - housekeeping, not security
        purge_expired(session)
    return jsonify(decision.to_dict())
