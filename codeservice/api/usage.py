"""Usage records: scanners upload what they decided offline; residents read their own history.

``POST /api/v1/usage`` (scanner key) takes ``{"records": [...]}`` only, never
a bare array, so the batch can grow other members later; the rules a record
must meet are in :mod:`codeservice.usage`. The answer is 200 with
``{"accepted": n, "duplicates": m}``, also when everything was a duplicate:
re-sending a batch is how a scanner retries.

``GET /api/v1/me/usage`` (resident session) answers
``{"records": [...], "next": cursor or null}``, newest first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request

from .. import auth, db, observability, scanner_health, usage
from ..context import scene_registry
from ..http import json_body
from ..openapi.operations import SCANNER_SCHEME, SESSION_SCHEME, described_by, operation
from ..openapi.schemas import closed_object, headers, json_content, ref
from .blueprint import api
from .scan import current_scanner


def _upload_usage_operation(_app: Flask) -> dict[str, Any]:
    return operation(
        "uploadUsage",
        "Upload usage records taken offline (a scanner)",
        "scanners",
        {
            "200": {
                "description": (
                    "Stored. Idempotent by record `id`: a record stored before (by any scanner) is a "
                    "duplicate and left as it was, so re-sending a batch is how a scanner retries."
                ),
                "content": json_content(
                    closed_object(
                        {
                            "accepted": {"type": "integer", "minimum": 0, "description": "Records stored now."},
                            "duplicates": {"type": "integer", "minimum": 0, "description": "Records already held."},
                        }
                    )
                ),
            }
        },
        errors=("BadUsageBatch", "ScannerKeyInvalid"),
        auth=SCANNER_SCHEME,
        request_schema="UsageBatch",
        database=True,
        description=(
            "A record is attributed to the uploading key's venue and device, whatever it says. "
            "An offline verifier's sync may send `Codeservice-Verifier-Status` (an RFC 8941 dictionary of "
            "integers, in seconds: `keys-age`, `revocations-age`, `clock-offset`, and `pending` records); "
            "it is kept for the operator console, and a field that does not read is ignored, never refused."
        ),
        parameters=[
            {
                "name": scanner_health.HEADER,
                "in": "header",
                "required": False,
                "description": (
                    "The offline verifier's state at the sync (RFC 8941 dictionary of integers, seconds): "
                    "`keys-age=120, revocations-age=30, clock-offset=-2, pending=5`; any member may be absent."
                ),
                "schema": {"type": "string"},
            }
        ],
    )


@api.post("/usage")
@described_by(_upload_usage_operation)
@observability.counts_usage_batches
def upload_usage() -> Any:
    session = db.session()
    scanner = current_scanner()
    # The console's scanner table: this upload's time and the sync's own report, whatever the batch holds.
    scanner_health.note_upload(
        session, scanner.id, request.headers.get(scanner_health.HEADER), now=datetime.now(UTC)
    )
    body = json_body(usage.UPLOAD)
    registry = scene_registry()
    rows = usage.validate_batch(
        body["records"],
        scanner_id=scanner.id,
        venue_id=scanner.venue_id,
        device_id=scanner.device_id,
        scenes={name: registry.usage_fields(name) for name in scanner.scenes},
        now=datetime.now(UTC),
    )
    accepted, duplicates = usage.ingest(session, rows)
    observability.record_usage_batch(accepted, duplicates)
    return jsonify(accepted=accepted, duplicates=duplicates)


def _my_usage_operation(_app: Flask) -> dict[str, Any]:
    return operation(
        "getMyUsage",
        "The resident's own usage history, newest first",
        "residents",
        {
            "200": {
                "description": "One page of records; `next` is the cursor of the page after, null at the end.",
                "headers": headers(Cache_Control="CacheControlNoStore"),
                "content": json_content(
                    closed_object(
                        {
                            "records": {"type": "array", "items": ref("schemas", "UsageRecord")},
                            "next": {"type": ["string", "null"], "description": "Send as `before` for more."},
                        }
                    )
                ),
            }
        },
        errors=("BadHistoryQuery", "NotAuthenticated"),
        auth=SESSION_SCHEME,
        database=True,
        parameters=[
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": "Records per page.",
                "schema": {"type": "integer", "minimum": 1, "maximum": usage.MAX_LIMIT, "default": usage.DEFAULT_LIMIT},
            },
            {
                "name": "before",
                "in": "query",
                "required": False,
                "description": "A `next` cursor from a previous page.",
                "schema": {"type": "string"},
            },
        ],
    )


@api.get("/me/usage")
@described_by(_my_usage_operation)
def my_usage() -> Any:
    resident = auth.current_resident()
    limit = usage.parse_limit(request.args.get("limit"))
    page = usage.history(db.session(), resident.code_id, limit=limit, before=request.args.get("before"))
    registry = scene_registry()
    records = [usage.record_json(row, registry.usage_fields(row.scene)) for row in page.rows]
    response = jsonify(records=records, next=page.next)
    response.headers["Cache-Control"] = "no-store"
    return response
