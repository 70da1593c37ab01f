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

from flask import jsonify, request

from .. import auth, db, observability, usage
from ..context import scene_registry
from ..http import json_body
from .blueprint import api
from .scan import current_scanner


@api.post("/usage")
@observability.counts_usage_batches
def upload_usage() -> Any:
    session = db.session()
    scanner = current_scanner()
    body = json_body({"records": list})
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


@api.get("/me/usage")
def my_usage() -> Any:
    resident = auth.current_resident()
    limit = usage.parse_limit(request.args.get("limit"))
    page = usage.history(db.session(), resident.code_id, limit=limit, before=request.args.get("before"))
    registry = scene_registry()
    records = [usage.record_json(row, registry.usage_fields(row.scene)) for row in page.rows]
    response = jsonify(records=records, next=page.next)
    response.headers["Cache-Control"] = "no-store"
    return response
