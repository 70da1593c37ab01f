"""Verification in the service: the offline library over the shared database.

The service does not re-implement a rule: it runs :class:`verifiers.OfflineVerifier`
with a :class:`DatabaseStore`, so replay and scene state (open trips, today's
entries and check-ins) are shared by every worker and instance, and each
decision's usage record is written in the same database transaction as the
state change it depends on.

Concurrency: a code's ``jti`` is claimed by inserting it (a concurrent
claim of the same ``jti`` waits on the primary key and then finds it taken);
a scene's state key is locked before it is read (PostgreSQL: a transaction
advisory lock on the key; SQLite: every transaction holds the write lock).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import JSON, Boolean, Connection, DateTime, bindparam, delete, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from verifiers import KeySet, OfflineVerifier, SceneRegistry, StateWrite

from .context import key_store
from .models import SceneStateEntry, Scanner, SeenCode

PURGE_EVERY = 1000


def dialect_insert(session: Session, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT on both PostgreSQL and SQLite."""
    name = session.get_bind().dialect.name
    return (pg_insert if name == "postgresql" else sqlite_insert)(table)


def usage_row(record: dict[str, Any], *, scanner: Scanner, online: bool, received_at: datetime) -> dict[str, Any]:
    """A usage record as a row; venue and device always come from the scanner's key."""
    return {
        "id": record["id"],
        "scene": record["scene"],
        "venue_id": scanner.venue_id,
        "device_id": scanner.device_id,
        "sub": record["sub"],
        "jti": record["jti"],
        "decided_at": parse_rfc3339(record["decided_at"]),
        "ok": record["ok"],
        "code": record["code"],
        "detail": record["detail"],
        "scanner_id": scanner.id,
        "online": online,
        "received_at": received_at,
    }


def parse_rfc3339(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a time without a zone")
    return parsed.astimezone(UTC)


# The verify path's statements, built once: plain Core text with typed
# parameters (the ON CONFLICT forms are the same in PostgreSQL and SQLite),
# which costs a fraction of building ORM statements per request.
_CLAIM_JTI = text(
    "INSERT INTO seen_codes (jti, expires_at) VALUES (:jti, :expires_at) ON CONFLICT (jti) DO NOTHING RETURNING jti"
)
_LOCK_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_READ_STATE = text("SELECT value FROM scene_state WHERE key = :key AND expires_at >= :now").columns(value=JSON)
_DELETE_STATE = text("DELETE FROM scene_state WHERE key = :key")
_WRITE_STATE = text(
    "INSERT INTO scene_state (key, value, expires_at) VALUES (:key, :value, :expires_at) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
).bindparams(bindparam("value", type_=JSON))
_INSERT_USAGE = text(
    "INSERT INTO usage_records (id, scene, venue_id, device_id, sub, jti, decided_at, ok, code, detail,"
    " scanner_id, online, received_at) VALUES (:id, :scene, :venue_id, :device_id, :sub, :jti, :decided_at,"
    " :ok, :code, :detail, :scanner_id, :online, :received_at)"
).bindparams(
    bindparam("detail", type_=JSON),
    bindparam("decided_at", type_=DateTime(timezone=True)),
    bindparam("received_at", type_=DateTime(timezone=True)),
    bindparam("ok", type_=Boolean),
    bindparam("online", type_=Boolean),
)
_IS_REVOKED = text("SELECT 1 FROM residents WHERE code_id = :sub AND revoked_at IS NOT NULL")


class DatabaseStore:
    """The verifier's store interface over the request's database connection."""

    def __init__(self, session: Session, scanner: Scanner) -> None:
        self.session = session
        self.scanner = scanner
        self._postgres = session.get_bind().dialect.name == "postgresql"
        self._now = 0.0
        self._connection: Connection | None = None

    @property
    def connection(self) -> Connection:
        """The transaction's connection, looked up once per transaction."""
        if self._connection is None:
            self._connection = self.session.connection()
        return self._connection

    # -- the Store protocol --------------------------------------------------

    def transaction(self, now: float) -> DatabaseStore:
        self._now = now
        return self

    def __enter__(self) -> DatabaseStore:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is None:
            self.session.commit()
        else:
            self.session.rollback()
        self._connection = None

    def claim_jti(self, jti: str, expires_at: int) -> bool:
        return self.connection.execute(_CLAIM_JTI, {"jti": jti, "expires_at": expires_at}).first() is not None

    def get(self, key: str) -> Any:
        if self._postgres:
            self.connection.execute(_LOCK_KEY, {"key": key})
        return self.connection.execute(_READ_STATE, {"key": key, "now": int(self._now)}).scalar()

    def save(
        self,
        record: dict[str, Any],
        *,
        jti: str | None = None,
        jti_expires_at: int = 0,
        writes: Iterable[StateWrite] = (),
    ) -> None:
        # ``jti`` was inserted by claim_jti in this same transaction.
        for write in writes:
            if write.value is None:
                self.connection.execute(_DELETE_STATE, {"key": write.key})
            else:
                self.connection.execute(
                    _WRITE_STATE, {"key": write.key, "value": write.value, "expires_at": write.expires_at}
                )
        row = usage_row(record, scanner=self.scanner, online=True, received_at=datetime.now(UTC))
        self.connection.execute(_INSERT_USAGE, row)

    def get_meta(self, key: str) -> Any:
        return None  # keys and revocations live in the service itself

    def set_meta(self, key: str, value: Any) -> None:
        pass

    def pending_records(self, limit: int) -> list[dict[str, Any]]:
        return []  # written straight to the database: nothing waits to be uploaded

    def mark_synced(self, record_ids: Iterable[str]) -> None:
        pass

    def close(self) -> None:
        pass


class RevokedResidents:
    """``sub in revoked``: the live revocation list, read from the residents table."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def __contains__(self, sub: object) -> bool:
        return self.session.connection().execute(_IS_REVOKED, {"sub": sub}).first() is not None


def service_key_set() -> KeySet:
    """The published keys as a KeySet, rebuilt only when the JWKS changes."""
    jwks = key_store().jwks()
    cache = current_app.extensions.setdefault("codeservice.key_set", {})
    fingerprint = tuple(sorted(key["kid"] for key in jwks["keys"]))
    if cache.get("fingerprint") != fingerprint:
        cache["key_set"] = KeySet.from_jwks(jwks)
        cache["fingerprint"] = fingerprint
    return cache["key_set"]


def scene_registry() -> SceneRegistry:
    registry = current_app.extensions.get("codeservice.scenes")
    if registry is None:
        registry = current_app.extensions["codeservice.scenes"] = SceneRegistry.from_entry_points()
    return registry


def verifier_for(session: Session, scanner: Scanner) -> OfflineVerifier:
    config = current_app.config
    return OfflineVerifier(
        service_key_set(),
        issuer=config["ISSUER"],
        store=DatabaseStore(session, scanner),  # type: ignore[arg-type]
        leeway=config["LEEWAY"],
        venue_id=scanner.venue_id,
        device_id=scanner.device_id,
        scenes=scene_registry(),
        scene_config=config.get("SCENES") or {},
        revocations=RevokedResidents(session),
    )


def purge_expired(session: Session, now: float | None = None) -> None:
    """Forget codes and scene state that can no longer matter."""
    cutoff = int(time.time() if now is None else now)
    session.execute(delete(SeenCode).where(SeenCode.expires_at < cutoff))
    session.execute(delete(SceneStateEntry).where(SceneStateEntry.expires_at < cutoff))
    session.commit()
