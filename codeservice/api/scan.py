"""Scanners' endpoints: verify a code online."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from .. import scanners
from ..openapi.operations import SCANNER_SCHEME, described_by, operation
from ..openapi.schemas import json_content, ref
from ..scan_cache import ScanDirectory
from ..scan_store import DirectoryRows, ScanConnection, ScannerRow
from ..scanning import scan_connection, scan_directory, verify_request
from .blueprint import api


def current_scanner(connection: ScanConnection | None = None) -> ScannerRow:
    """The scanner whose key the request carries (401 otherwise), known to the process or read on ``connection``."""
    if connection is None:
        with scan_connection() as own:
            return current_scanner(own)
    directory = scan_directory()
    return _bearer_scanner(directory, directory.fresh(connection), connection)


def _bearer_scanner(directory: ScanDirectory, rows: DirectoryRows, connection: ScanConnection) -> ScannerRow:
    return scanners.authenticate(directory, rows, connection, request.headers.get("Authorization"))


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
    _scanner, decision = verify_request(_bearer_scanner)
    return jsonify(decision.to_dict())
