"""Typed SQLAlchemy 2.0 models.

Personal data is kept to what the service needs, and the identifying parts
are never stored in the clear: an ID number or phone is kept encrypted
(AES-GCM) beside a keyed hash (HMAC-SHA256) used for uniqueness and lookup.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


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
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LoginThrottle(Base):
    """Failed logins per phone (by keyed hash, known or not): a cool-down after five."""

    __tablename__ = "login_throttle"

    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
