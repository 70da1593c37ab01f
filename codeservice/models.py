"""Typed SQLAlchemy 2.0 models.

Personal data is kept to what the service needs, and the identifying parts
are never stored in the clear: an ID number or phone is kept encrypted
(AES-GCM) beside a keyed hash (HMAC-SHA256) used for uniqueness and lookup.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def as_utc(value: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite hands times back naive, in UTC as stored)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON}


class Resident(Base):
    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_id: Mapped[str] = mapped_column(String(16), unique=True)
    """The ``sub`` of every code: random, stable, never derived from personal data."""
    name: Mapped[str] = mapped_column(String(100))
    """The name masked for display (``张*明``): the full name is only in ``name_encrypted``."""
    name_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    """The full name, encrypted like the ID number and phone (purpose ``name``)."""
    id_type: Mapped[str] = mapped_column(String(20))
    id_number_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_hash: Mapped[str] = mapped_column(String(64), unique=True)
    phone_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    phone_hash: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    birth_date: Mapped[date | None] = mapped_column(Date)
    """From a resident ID number; makes the ``senior`` category follow the calendar."""
    category: Mapped[str | None] = mapped_column(String(16))
    """Set by an administrator: ``student``, ``disabled`` or ``child``."""
    auth_epoch: Mapped[int] = mapped_column(Integer, default=0)
    """Bumped on logout: session cookies carry it, so older copies stop working."""
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LoginThrottle(Base):
    """Failed logins per phone (by keyed hash, known or not): a cool-down after five."""

    __tablename__ = "login_throttle"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeviceThrottle(Base):
    """Failed logins per device cookie (by keyed hash of its nonce): that browser's own cool-down.

    A browser holding a valid device cookie for the phone it logs in to is
    judged by this count alone, never by the phone's ``LoginThrottle``.
    """

    __tablename__ = "device_throttle"

    device_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Scanner(Base):
    """A venue device's key: one venue, one device, the scenes it may verify."""

    __tablename__ = "scanners"

    id: Mapped[int] = mapped_column(primary_key=True)
    venue_id: Mapped[str] = mapped_column(String(100))
    device_id: Mapped[str] = mapped_column(String(100))
    scenes: Mapped[list[str]]
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 of the key: the key is 256 random bits, so no slow hash is needed."""
    key_hint: Mapped[str] = mapped_column(String(8))
    """The key's first characters, for operators telling keys apart."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attended: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A staffed scanner (``scanners add --attended``): someone checks the ID card; only these accept paper codes."""


class UsageRecord(Base):
    """One decision, online or synced from an offline verifier (contract section 5)."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_sub_decided", "sub", "decided_at", "id"),
        # The console's exports of one venue's day, and a scanner's last decision (migration 0008).
        Index("ix_usage_records_venue_decided", "venue_id", "decided_at"),
        Index("ix_usage_records_scanner_decided", "scanner_id", "decided_at"),
        # PostgreSQL: the roll-up's ranges of transactions (migration 0012); SQLite never fills the column.
        Index(
            "ix_usage_records_rollup_xact",
            "rollup_xact",
            postgresql_using="brin",
            sqlite_where=text("rollup_xact IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    """The record's UUID: the idempotency key of uploads."""
    scene: Mapped[str | None] = mapped_column(String(64))
    venue_id: Mapped[str | None] = mapped_column(String(100))
    device_id: Mapped[str | None] = mapped_column(String(100))
    sub: Mapped[str | None] = mapped_column(String(64))
    jti: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    code: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    """jsonb on PostgreSQL (migration 0010): stored parsed, so the day report reads its members without parsing."""
    scanner_id: Mapped[int | None] = mapped_column(Integer)
    online: Mapped[bool] = mapped_column(Boolean)
    """True when decided by the verify endpoint, False when uploaded after an offline scan."""
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    form: Mapped[str] = mapped_column(String(8), default="online", server_default="online")
    """The code's form (contract section 9): ``online`` (a JWS), ``device`` or ``paper``."""
    rollup_xact: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue())
    """PostgreSQL: the id of the transaction that inserted the record (its default, migration 0012), by which
    :func:`codeservice.usage_rollup.roll_up` counts it into ``usage_hourly`` once it has committed.
    NULL on SQLite (its trigger counts the record as it is inserted) and for records counted before 0012."""


class SeenCode(Base):
    """Codes accepted by any instance: the service's replay cache."""

    __tablename__ = "seen_codes"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class SceneStateEntry(Base):
    """The scenes' shared state: open trips, today's entries and check-ins."""

    __tablename__ = "scene_state"

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)


class Device(Base):
    """A resident's phone enrolled for device codes (contract section 9): its P-256 public key."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    """The public device id: 12 random bytes in base64url, never derived from the key."""
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    public_key: Mapped[dict[str, Any]]
    """The JWK as enrolled, reduced to ``kty``, ``crv``, ``x`` and ``y``."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Credential(Base):
    """A credential issued for a device or printed on a paper card (contract section 9)."""

    __tablename__ = "credentials"
    __table_args__ = (Index("ix_credentials_revoked_expires", "revoked_at", "expires_at"),)

    cti: Mapped[str] = mapped_column(String(11), primary_key=True)
    """The credential's 8 random bytes in unpadded base64url, as the revocation list names it."""
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"), index=True)
    """The device whose key the credential's ``cnf`` names; null for a paper credential."""
    use: Mapped[str] = mapped_column(String(8))
    """``device`` or ``paper``."""
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ScanDirectoryVersion(Base):
    """One row: changed whenever a scanner, a resident's revocation or a credential's revocation changes.

    Set by database triggers (migration 0009), whatever writes the change, so
    that each process's copy of the scanners and the revocation list (the
    verify path's :class:`~codeservice.scan_cache.ScanDirectory`) can tell it is
    out of date by reading this one row. The value is random, never a count:
    a row deleted and made again cannot bring back a value a process holds.
    """

    __tablename__ = "scan_directory_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class Operator(Base):
    """An account of the operator console (``/console``): every venue's data, or only the venues named."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    """Set by ``operators add`` (its first password is printed once): the console asks for a new one first."""
    venues: Mapped[list[str]]
    """The venues this operator sees; empty: every venue."""
    auth_epoch: Mapped[int] = mapped_column(Integer, default=0)
    """Bumped on logout and password change: older copies of the session cookie stop working."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScannerHealth(Base):
    """What an offline scanner last told about itself, with its last upload (``POST /api/v1/usage``)."""

    __tablename__ = "scanner_health"

    scanner_id: Mapped[int] = mapped_column(ForeignKey("scanners.id", ondelete="CASCADE"), primary_key=True)
    last_upload_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the last ``Codeservice-Verifier-Status`` header that could be read arrived; the ages are as of then."""
    keys_age: Mapped[int | None] = mapped_column(BigInteger)
    revocations_age: Mapped[int | None] = mapped_column(BigInteger)
    clock_offset: Mapped[int | None] = mapped_column(BigInteger)
    pending: Mapped[int | None] = mapped_column(BigInteger)


class UsageHourly(Base):
    """The usage records counted by UTC hour and what the console groups by.

    Filled from ``usage_records`` whatever inserts them (the verify path,
    uploads, a bulk load): on SQLite by migration 0008's trigger as each
    lands; on PostgreSQL after their commit (migration 0012,
    :func:`codeservice.usage_rollup.roll_up`, which every reader calls
    first), so a decision writes no roll-up row. The console reads an hour's
    few rows instead of its thousands of records. Text dimensions are ''
    rather than null so that they are part of the key. ``shard``: 0008's
    trigger spread concurrent PostgreSQL writers over rows of their own (the
    backend's pid modulo 8); roll-ups take turns and write shard 0; readers
    sum over it.
    """

    __tablename__ = "usage_hourly"

    hour_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    """The hour's start, in seconds since the epoch (UTC)."""
    venue_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    scene: Mapped[str] = mapped_column(String(64), primary_key=True)
    form: Mapped[str] = mapped_column(String(8), primary_key=True)
    ok: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    line: Mapped[str] = mapped_column(String(200), primary_key=True)
    station: Mapped[str] = mapped_column(String(200), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    category: Mapped[str] = mapped_column(String(16), primary_key=True)
    """transit: the concession category the fare was computed with ('' for the full fare)."""
    department: Mapped[str] = mapped_column(String(200), primary_key=True)
    """clinic: the department."""
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger)
    fare_cents: Mapped[int] = mapped_column(BigInteger)
    people: Mapped[int] = mapped_column(BigInteger)
    """venue: the people let in (a reservation's party counts whole)."""
    capacity: Mapped[int | None] = mapped_column(BigInteger)
    """venue: the largest capacity a scan of this hour was checked against."""


class UsageRollupMark(Base):
    """PostgreSQL: where the last roll-up of usage records stopped (migration 0012); one row.

    Every transaction whose id is below ``upto`` has had its records counted
    into ``usage_hourly``. A roll-up holds this row's lock while it counts.
    """

    __tablename__ = "usage_rollup_mark"
    __table_args__ = (CheckConstraint("id = 1", name="ck_usage_rollup_mark_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upto: Mapped[int] = mapped_column(BigInteger)
