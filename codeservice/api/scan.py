"""Scanners' endpoints: verify a code online."""

from __future__ import annotations

import random
from typing import Any

from flask import Flask, jsonify, request

from .. import db, observability, scanners
from ..errors import SceneNotPermitted
from ..http import json_body
from ..openapi.operations import SCANNER_SCHEME, described_by, operation
from ..openapi.schemas import json_content, ref
from ..scan_store import PURGE_EVERY, ScanConnection, ScannerRow, purge_expired
from ..scanning import VERIFY_REQUEST, scan_connection, scan_directory, verifier_for
from .blueprint import api


def current_scanner(connection: ScanConnection | None = None) -> ScannerRow:
    """The scanner whose key the request carries (401 otherwise), known to the process or read on ``connection``."""
    if connection is None:
        with scan_connection() as own:
            return current_scanner(own)
    directory = scan_directory()
    return scanners.authenticate(
        directory, directory.fresh(connection), connection, request.headers.get("Authorization")
    )


def _verify_operation(_app: Flask) -> dict[str, Any]:
    return operation(
        "verifyCode",
        "Verify a code at a scene (a scanner, online)",
        "scanners",
        {
            "200": {
                "description": (
                    "The decision, whatever the token holds: `ok` false and the reason's `code` for a "
                    "refused code. The usage is logged with the scanner's venue and device."
                ),
                "content": json_content(ref("schemas", "Decision")),
            }
        },
        errors=("ScannerKeyInvalid", "SceneNotPermitted", "RateLimited"),
        auth=SCANNER_SCHEME,
        request_schema="VerifyRequest",
        database=True,
        description=(
            "The key is checked first, then the body: `token` and `scene` are required strings, "
            "`context` an optional object (what the scene needs from the scanner)."
        ),
    )


@api.post("/verify")
@described_by(_verify_operation)
def verify() -> Any:
    """A decision for any token, as 200; the usage is logged with it."""
    directory = scan_directory()
    with scan_connection() as connection:
        rows = directory.fresh(connection)  # the scanners and the revocation list, at most 2 s old
        scanner = scanners.authenticate(directory, rows, connection, request.headers.get("Authorization"))
        body = json_body(VERIFY_REQUEST)
        if body["scene"] not in scanner.scenes:
            raise SceneNotPermitted(f"this scanner's key may verify {', '.join(scanner.scenes)} only")
        decision = verifier_for(connection, scanner, rows).verify(body["token"], body["scene"], body.get("context"))
    observability.record_verify_decision(body["scene"], decision.code)
    if random.random() < 1 / PURGE_EVERY:  # housekeeping, not security
        purge_expired(db.session())
    return jsonify(decision.to_dict())
