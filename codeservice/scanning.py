"""Verification in the service: the offline library over the shared database, for the current app.

The service does not re-implement a rule: it runs :class:`verifiers.OfflineVerifier`
with a :class:`~codeservice.scan_store.DatabaseStore` (the database adapter,
which has the verify path's statements and its concurrency), on the app's
engine, keys, scenes and configuration, and the process's copy of the
scanners and the revocation list (:class:`~codeservice.scan_cache.ScanDirectory`).

Nothing of that is made per request that need not be (:class:`Verifiers`):
the key set is made again only when the JWKS may have changed
(:meth:`~codeservice.keystore.KeyStore.jwks_version`: a rotation or
retirement, by any process, takes effect at the next decision, as before),
and each thread keeps one verifier per scanner, made again when the key set,
the process's copy of the scanners and revocations, or the scanner changes.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from flask import Flask, current_app

from verifiers import Decision, KeySet, OfflineVerifier, SceneRegistry
from verifiers.offline_codes import CredentialCache
from verifiers.shapes import Member

from . import db, observability
from .errors import SceneNotPermitted
from .extensions import KEYS, SCAN_DIRECTORY, SCENES, VERIFIERS
from .http import json_body
from .keystore import KeyStore
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
    app.extensions[VERIFIERS] = Verifiers(app.config, app.extensions[KEYS], app.extensions[SCENES])


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


MAX_VERIFIERS_PER_THREAD = 1024
"""Verifiers a thread keeps (one per scanner it has served); past this many they are all made afresh."""


@dataclass(frozen=True, slots=True)
class _Made:
    """One thread's verifier for one scanner, and what it was made of (compared by identity)."""

    scanner: ScannerRow
    rows: DirectoryRows
    key_set: KeySet
    store: DatabaseStore
    verifier: OfflineVerifier


class Verifiers:
    """The app's key set and each thread's verifiers, made once per change instead of once per request.

    The configuration (issuer, leeway, scenes) is read once, when the app is
    made (``init_app``). A verifier's store is the thread's own, its
    connection set for each decision (:meth:`for_scan`), so a verifier is
    never used by two threads at once.
    """

    def __init__(self, config: Mapping[str, Any], keys: KeyStore, scenes: SceneRegistry) -> None:
        self._keys = keys
        self._issuer: str = config["ISSUER"]
        self._leeway: int = config["LEEWAY"]
        self._scene_config: dict[str, Any] = config.get("SCENES") or {}
        self._scenes = scenes
        self._key_set: tuple[tuple[Any, ...], KeySet] | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        # One bounded cache of checked device credentials for every verifier here (their rules are the same),
        # not one per verifier: as many verifiers as scanners would each keep thousands.
        self._credentials = CredentialCache()

    def key_set(self) -> KeySet:
        """The published keys as a KeySet: the same object while :meth:`KeyStore.jwks_version` stays the same."""
        version = self._keys.jwks_version()
        made = self._key_set
        if made is None or made[0] != version:
            with self._lock:
                made = self._key_set
                if made is None or made[0] != version:
                    # The version read before the keys: a change in between makes it again next time.
                    made = self._key_set = (version, KeySet.from_jwks(self._keys.jwks()))
        return made[1]

    def for_scan(self, connection: ScanConnection, scanner: ScannerRow, rows: DirectoryRows) -> OfflineVerifier:
        """This thread's verifier for ``scanner``, its store on ``connection``; ``rows``: the process's copy."""
        key_set = self.key_set()
        made_here: dict[str, _Made] | None = getattr(self._local, "made", None)
        if made_here is None:
            made_here = self._local.made = {}
        made = made_here.get(scanner.key_hash)
        if made is None or made.scanner is not scanner or made.rows is not rows or made.key_set is not key_set:
            if len(made_here) >= MAX_VERIFIERS_PER_THREAD:
                made_here.clear()
            made = made_here[scanner.key_hash] = self._make(connection, scanner, rows, key_set)
        made.store.connection = connection
        return made.verifier

    def _make(self, connection: ScanConnection, scanner: ScannerRow, rows: DirectoryRows, key_set: KeySet) -> _Made:
        store = DatabaseStore(connection, scanner)
        verifier = OfflineVerifier(
            key_set,
            issuer=self._issuer,
            store=store,
            leeway=self._leeway,
            venue_id=scanner.venue_id,
            device_id=scanner.device_id,
            scenes=self._scenes,
            scene_config=self._scene_config,
            revoked=RevokedIds(rows.revoked_subs),  # asked, never copied
            attended=scanner.attended,  # the key's, never the request's (contract section 9, rule 6)
            revoked_credentials=RevokedIds(rows.revoked_ctis),  # likewise
            credential_cache_size=0,
        )
        verifier.credentials = self._credentials
        return _Made(scanner, rows, key_set, store, verifier)


def _verifiers() -> Verifiers:
    return cast(Verifiers, current_app.extensions[VERIFIERS])


def verifier_for(connection: ScanConnection, scanner: ScannerRow, rows: DirectoryRows) -> OfflineVerifier:
    """The verifier of one scan: ``rows`` is the process's copy of the revocation list (:class:`ScanDirectory`)."""
    return _verifiers().for_scan(connection, scanner, rows)


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
