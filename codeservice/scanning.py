"""Verification in the service: the offline library over the shared database, for the current app.

The service does not re-implement a rule: it runs :class:`verifiers.OfflineVerifier`
with a :class:`~codeservice.scan_store.DatabaseStore` (the database adapter,
which has the verify path's statements and its concurrency), on the app's
engine, keys, scenes and configuration, and the process's copy of the
scanners and the revocation list (:class:`~codeservice.scan_cache.ScanDirectory`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

from flask import Flask, current_app

from verifiers import Decision, KeySet, OfflineVerifier
from verifiers.shapes import Member

from . import db, observability
from .context import key_store, scene_registry
from .errors import SceneNotPermitted
from .extensions import KEY_SET, SCAN_DIRECTORY
from .http import json_body
from .scan_cache import RevokedIds, ScanDirectory
from .scan_store import PURGE_EVERY, DatabaseStore, DirectoryRows, ScanConnection, ScannerRow, purge_expired

VERIFY_REQUEST: tuple[Member, ...] = (
    Member("token", {"type": "string"}, "The code as scanned: any string (a malformed one is a decision)."),
    Member("scene", {"type": "string"}, "The scene the scanner verifies at; its key must name it."),
    Member(
        "context",
        {"type": ["object", "null"]},
        "What the scene needs from the scanner; a context that lacks it is a `bad_context` decision.",
        required=False,
    ),
)
"""A verification (``POST /api/v1/verify``)."""


def init_app(app: Flask) -> None:
    """The process's copy of the scanners and the revocation list, told of changes made through the app's engine."""
    directory = ScanDirectory()
    directory.watch(db.engine(app))
    app.extensions[SCAN_DIRECTORY] = directory


def scan_directory() -> ScanDirectory:
    return cast(ScanDirectory, current_app.extensions[SCAN_DIRECTORY])


@contextmanager
def scan_connection() -> Iterator[ScanConnection]:
    """The current app's :class:`ScanConnection`, returned to the pool at the end of the block."""
    connection = ScanConnection(db.engine(), db.sqlite_writer(), observability.database_latency())
    try:
        yield connection
    except BaseException as error:
        lost = db.is_connection_error(error)
        if lost:
            db.connection_lost(db.engine())
        connection.close(invalidate=lost)
        raise
    connection.close()


def service_key_set() -> KeySet:
    """The published keys as a KeySet, rebuilt only when the JWKS changes."""
    jwks = key_store().jwks()
    cache = current_app.extensions.setdefault(KEY_SET, {})
    fingerprint = tuple(sorted(key["kid"] for key in jwks["keys"]))
    if cache.get("fingerprint") != fingerprint:
        cache["key_set"] = KeySet.from_jwks(jwks)
        cache["fingerprint"] = fingerprint
    return cast(KeySet, cache["key_set"])


def verifier_for(connection: ScanConnection, scanner: ScannerRow, rows: DirectoryRows) -> OfflineVerifier:
    """The verifier of one scan: ``rows`` is the process's copy of the revocation list (:class:`ScanDirectory`)."""
    config = current_app.config
    return OfflineVerifier(
        service_key_set(),
        issuer=config["ISSUER"],
        store=DatabaseStore(connection, scanner),
        leeway=config["LEEWAY"],
        venue_id=scanner.venue_id,
        device_id=scanner.device_id,
        scenes=scene_registry(),
        scene_config=config.get("SCENES") or {},
        revoked=RevokedIds(rows.revoked_subs),  # asked, never copied
        attended=scanner.attended,  # the key's, never the request's (contract section 9, rule 6)
        revoked_credentials=RevokedIds(rows.revoked_ctis),  # likewise
    )


ScannerLookup = Callable[[ScanDirectory, DirectoryRows, ScanConnection], ScannerRow]
"""Finds the request's scanner (by its key, or its scanner session) in the process's copy; 401 otherwise."""


def verify_request(authenticate: ScannerLookup) -> tuple[ScannerRow, Decision]:
    """The decision for this request's verify body (:data:`VERIFY_REQUEST`), by the scanner ``authenticate`` finds.

    The one path of ``POST /api/v1/verify`` (a key in ``Authorization``) and
    of the ``/scanner`` page (a scanner session): the scanner is read on the
    scan's own connection, then the body, then the scene is checked against
    the scanner's, and the decision is made and logged with its venue,
    device and staffing.
    """
    directory = scan_directory()
    with scan_connection() as connection:
        rows = directory.fresh(connection)  # the scanners and the revocation list, at most 2 s old
        scanner = authenticate(directory, rows, connection)
        body = json_body(VERIFY_REQUEST)
        if body["scene"] not in scanner.scenes:
            raise SceneNotPermitted(f"this scanner's key may verify {', '.join(scanner.scenes)} only")
        decision = verifier_for(connection, scanner, rows).verify(body["token"], body["scene"], body.get("context"))
    observability.record_verify_decision(body["scene"], decision.code)
    if random.random() < 1 / PURGE_EVERY:  # housekeeping, not security
        purge_expired(db.session())
    return scanner, decision
