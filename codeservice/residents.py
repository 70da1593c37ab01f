"""Residents: registration, login, the code's concession category. No Flask here.

Every function takes the SQLAlchemy session and the personal-data keys
(:class:`~codeservice.pii.DataKeys`) as parameters, and the time as ``now``.

Stored, per resident: the name masked for display (``张*明``) and, encrypted
(AES-GCM, each with its purpose as associated data), the full name, the ID
number and the phone; beside the last two a keyed hash (HMAC) of their
normalised form, for uniqueness and lookup; the password as a scrypt hash; the
birth date when the document is a resident ID. Nothing identifying is stored
or logged in the clear.

The concession category a code carries (``code_category``):

- ``disabled``, when an administrator set it: it wins over ``senior``, being a
  deliberate decision whose concession is, in the default fare table, as
  generous (free) and which may carry entitlements of its own;
- else ``senior``, when the birth date (resident IDs) makes the resident at
  least ``senior_age`` years old on the day in China (UTC+8). One is that age
  from the birthday on; someone born on 29 February, from 1 March in common
  years. It follows the calendar: no one has to ask for it;
- else the category an administrator set (``student`` or ``child``), if any.

What registration proves: nothing about who registers. The phone is not
verified (no SMS here) and the ID number is checked for its form and check
digit only, so anyone can register someone else's ID number, and its owner is
then refused (``identity_taken``). The remedy is :func:`reassign`, run by
staff after checking the owner's ID document in person.
"""

from __future__ import annotations

import functools
import hmac
import logging
import math
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session
from werkzeug.security import check_password_hash, generate_password_hash

from verifiers.shapes import Member

from . import identity
from .errors import (
    BadCredentials,
    IdentityNotFound,
    IdentityTaken,
    InvalidField,
    PhoneTaken,
    ResidentNotFound,
    TooManyAttempts,
)
from .issuance import new_code_id
from .models import DeviceThrottle, LoginThrottle, Resident, as_utc
from .pii import DataKeys

__all__ = [
    "ADMIN_CATEGORIES",
    "CHINA_TIME",
    "DEFAULT_COOLDOWN_SECONDS",
    "DEFAULT_MAX_FAILURES",
    "DEFAULT_SENIOR_AGE",
    "Reassignment",
    "age_on",
    "authenticate",
    "code_category",
    "device_cookie_for",
    "dummy_password_check",
    "find_by_phone",
    "masked_name",
    "masked_phone",
    "new_device_cookie",
    "reassign",
    "register",
    "revoke",
    "set_category",
    "settle_attempt",
    "throttled_attempt",
]

log = logging.getLogger(__name__)
audit_log = logging.getLogger("codeservice.audit")
"""What staff did to residents' accounts, and who: never an ID number or phone."""

CHINA_TIME = timezone(timedelta(hours=8), "UTC+08:00")
"""China Standard Time: no daylight saving since 1991."""
DEFAULT_SENIOR_AGE = 60
DEFAULT_MAX_FAILURES = 5
DEFAULT_COOLDOWN_SECONDS = 900
ADMIN_CATEGORIES = ("student", "disabled", "child")

LOGIN: tuple[Member, ...] = (
    Member("phone", {"type": "string"}, "The phone number registered."),
    Member("password", {"type": "string"}, "The password."),
)
"""A login (``POST /api/v1/session``)."""
"""The categories an administrator sets; ``senior`` follows from the birth date."""

# Purposes bound to each encrypted value and keyed hash (pii.DataKeys).
NAME_PURPOSE = "name"
ID_NUMBER_PURPOSE = "id_number"
PHONE_PURPOSE = "phone"
DEVICE_COOKIE_PURPOSE = "device_cookie"  # the device cookie's MAC
DEVICE_PURPOSE = "device"  # the keyed hash of its nonce, DeviceThrottle's key

DEVICE_COOKIE_FORM = re.compile(r"([A-Za-z0-9_-]{22})\.([0-9a-f]{64})")
"""A device cookie: a 128-bit nonce (base64url) and the MAC binding it to one phone."""


def _id_hash_purpose(id_type: str) -> str:
    return f"id:{id_type}"


# -- registration --------------------------------------------------------------


def register(session: Session, keys: DataKeys, fields: Mapping[str, Any], *, now: datetime) -> Resident:
    """A new resident from a registration's fields; committed.

    InvalidField (422) for a field that will not do, IdentityTaken (409) when
    the identity document already has an account, PhoneTaken (409) when the
    phone does; checked first, and again if the insert loses a race.
    """
    now = _aware(now)
    registration = identity.validate_registration(fields, today=now.astimezone(CHINA_TIME).date())
    id_hash = keys.lookup_hash(registration.id_number, purpose=_id_hash_purpose(registration.id_type))
    phone_hash = keys.lookup_hash(registration.phone, purpose=PHONE_PURPOSE)
    _ensure_free(session, id_hash, phone_hash)
    resident = _new_resident(keys, registration, id_hash=id_hash, phone_hash=phone_hash, now=now)
    session.add(resident)
    try:
        session.commit()
    except IntegrityError:
        # Another registration with the same document or phone won the race.
        session.rollback()
        _ensure_free(session, id_hash, phone_hash)
        raise
    log.info("registered resident %d (%s)", resident.id, resident.id_type)
    return resident


def _new_resident(
    keys: DataKeys, registration: identity.Registration, *, id_hash: str, phone_hash: str, now: datetime
) -> Resident:
    return Resident(
        code_id=new_code_id(),
        name=masked_name(registration.name),
        name_encrypted=keys.encrypt(registration.name, purpose=NAME_PURPOSE),
        id_type=registration.id_type,
        id_number_encrypted=keys.encrypt(registration.id_number, purpose=ID_NUMBER_PURPOSE),
        id_number_hash=id_hash,
        phone_encrypted=keys.encrypt(registration.phone, purpose=PHONE_PURPOSE),
        phone_hash=phone_hash,
        password_hash=generate_password_hash(registration.password),
        birth_date=registration.birth_date,
        category=None,
        auth_epoch=0,
        revoked_at=None,
        created_at=now.astimezone(UTC),
    )


def _ensure_free(session: Session, id_hash: str, phone_hash: str) -> None:
    if session.scalar(select(Resident.id).where(Resident.id_number_hash == id_hash)) is not None:
        raise IdentityTaken()
    if session.scalar(select(Resident.id).where(Resident.phone_hash == phone_hash)) is not None:
        raise PhoneTaken()


# -- login ---------------------------------------------------------------------


def authenticate(
    session: Session,
    keys: DataKeys,
    phone: str,
    password: str,
    *,
    now: datetime,
    max_failures: int = DEFAULT_MAX_FAILURES,
    cooldown_seconds: int = DEFAULT_COOLDOWN_SECONDS,
    device_cookie: str | None = None,
) -> Resident:
    """The resident with this phone and password.

    A wrong password and an unknown phone raise the same BadCredentials, after
    the same work (an unknown phone's password is checked against a dummy
    hash). Failures are counted, and after ``max_failures`` of them in a row
    every attempt they count against raises TooManyAttempts (with
    ``retry_after``) until ``cooldown_seconds`` have passed, even with the
    right password. Success clears the count. What they count against
    (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"):

    - ``device_cookie`` valid for this phone (:func:`new_device_cookie`, made
      at an earlier login): that cookie alone. A browser the resident has
      logged in from is never locked out by anyone else's failures, and its
      own failures lock only itself;
    - otherwise (no cookie, a forged one, another phone's): the phone, known
      or not, by its keyed hash, shared by every such client. A stranger's
      guesses lock out strangers, and the owner's success from a known
      browser does not lift that.
    """
    now = _aware(now)
    try:
        normalized_phone: str | None = identity.normalize_phone(phone)
    except InvalidField:
        normalized_phone = None  # no account can have it: a failure, but nothing to count
    candidate = identity.normalize_password(password) if identity.is_utf8_text(password) else None

    phone_hash = keys.lookup_hash(normalized_phone, purpose=PHONE_PURPOSE) if normalized_phone else None
    counter = throttled_attempt(session, keys, phone_hash, device_cookie, now=now)
    resident = (
        session.scalar(select(Resident).where(Resident.phone_hash == phone_hash)) if phone_hash is not None else None
    )
    if resident is not None and candidate is not None:
        ok = check_password_hash(resident.password_hash, candidate)
    else:
        dummy_password_check(candidate or "")
        ok = False
    settle_attempt(session, counter, ok, now=now, max_failures=max_failures, cooldown_seconds=cooldown_seconds)
    assert resident is not None
    log.info("resident %d logged in (counted by %s)", resident.id, _counted_by(counter) if counter else "-")
    return resident


# A failure counter: the key column of LoginThrottle or DeviceThrottle, and the key.
FailureCounter = tuple[InstrumentedAttribute[str], str]


def throttled_attempt(
    session: Session, keys: DataKeys, account_hash: str | None, device_cookie: str | None, *, now: datetime
) -> FailureCounter | None:
    """Before checking a password: what the attempt counts against, after refusing it during a cool-down.

    ``account_hash``: the keyed hash naming the account tried (a phone's, or
    another kind of account's with a purpose of its own), None when nothing
    can match. Raises TooManyAttempts while that counter cools down. Then
    check the password and call :func:`settle_attempt`. Operators' logins
    (:mod:`codeservice.operators`) are throttled by the same two counters.
    """
    counter = _failure_counter(keys, account_hash, device_cookie)
    if counter is not None:
        _check_throttle(session, *counter, _aware(now))
    return counter


def settle_attempt(
    session: Session,
    counter: FailureCounter | None,
    ok: bool,
    *,
    now: datetime,
    max_failures: int = DEFAULT_MAX_FAILURES,
    cooldown_seconds: int = DEFAULT_COOLDOWN_SECONDS,
) -> None:
    """After checking the password: a failure counted (BadCredentials raised), or the count cleared; committed."""
    if not ok:
        if counter is not None:
            failures = _record_failure(
                session, *counter, now=_aware(now), max_failures=max_failures, cooldown_seconds=cooldown_seconds
            )
            log.info("failed login (%d in a row for that %s)", failures, _counted_by(counter))
        raise BadCredentials()
    assert counter is not None
    key, value = counter
    session.execute(delete(_table(key)).where(key == value), execution_options={"synchronize_session": False})
    session.commit()


def dummy_password_check(candidate: str) -> None:
    """The work of a password check when there is no account: an unknown name costs what a wrong password does."""
    check_password_hash(_dummy_password_hash(), candidate)


def new_device_cookie(keys: DataKeys, resident: Resident) -> str:
    """A device cookie for this resident's phone, to set at a successful login: ``nonce.mac``.

    The MAC (HMAC-SHA256 with the service's data key) binds a fresh random
    nonce to the phone's keyed hash; nothing in the cookie names the resident.
    """
    return device_cookie_for(keys, resident.phone_hash)


def device_cookie_for(keys: DataKeys, account_hash: str) -> str:
    """A device cookie for the account whose keyed hash is ``account_hash`` (see :func:`throttled_attempt`)."""
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_device_mac(keys, account_hash, nonce)}"


def _failure_counter(keys: DataKeys, phone_hash: str | None, device_cookie: str | None) -> FailureCounter | None:
    """What this attempt's failures count against: a valid device cookie's, else the phone's (None: no phone)."""
    if phone_hash is None:
        return None
    match = DEVICE_COOKIE_FORM.fullmatch(device_cookie) if isinstance(device_cookie, str) else None
    if match is not None:
        nonce, mac = match.groups()
        if hmac.compare_digest(mac, _device_mac(keys, phone_hash, nonce)):
            return DeviceThrottle.device_hash, keys.lookup_hash(nonce, purpose=DEVICE_PURPOSE)
    return LoginThrottle.phone_hash, phone_hash


def _device_mac(keys: DataKeys, phone_hash: str, nonce: str) -> str:
    return keys.lookup_hash(f"{nonce}.{phone_hash}", purpose=DEVICE_COOKIE_PURPOSE)


def _table(key: InstrumentedAttribute[str]) -> type[LoginThrottle | DeviceThrottle]:
    return DeviceThrottle if key.class_ is DeviceThrottle else LoginThrottle


def _counted_by(counter: FailureCounter) -> str:
    return "device" if _table(counter[0]) is DeviceThrottle else "phone"


@functools.cache
def _dummy_password_hash() -> str:
    """A hash of a random password, made like a real one: the same work to check."""
    return generate_password_hash(secrets.token_urlsafe(16))


def _check_throttle(session: Session, key: InstrumentedAttribute[str], value: str, now: datetime) -> None:
    table = _table(key)
    row = session.execute(select(table.failures, table.locked_until).where(key == value)).first()
    if row is None or row.locked_until is None:
        return
    locked_until = as_utc(row.locked_until)
    if locked_until > now:
        retry_after = max(1, math.ceil((locked_until - now).total_seconds()))
        log.info("login refused: that %s is cooling down for %d s", _counted_by((key, value)), retry_after)
        minutes = math.ceil(retry_after / 60)
        raise TooManyAttempts(
            f"too many failed attempts; try again in {minutes} minute{'s' if minutes != 1 else ''}",
            retry_after=retry_after,
        )
    # The cool-down is over: a fresh count.
    session.execute(
        update(table).where(key == value).values(failures=0, locked_until=None),
        execution_options={"synchronize_session": False},
    )
    session.commit()


def _record_failure(
    session: Session,
    key: InstrumentedAttribute[str],
    value: str,
    *,
    now: datetime,
    max_failures: int,
    cooldown_seconds: int,
) -> int:
    """Count one more failure (atomically, whoever else is counting); lock at ``max_failures``."""
    table = _table(key)
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table).values({key.key: value, "failures": 1, "locked_until": None})
        session.execute(
            statement.on_conflict_do_update(index_elements=[key], set_={"failures": table.failures + 1})
        )
    else:  # another database: lock the row, or create it
        if session.get(table, value, with_for_update=True) is None:
            session.add(table(**{key.key: value, "failures": 1, "locked_until": None}))
        else:
            session.execute(
                update(table).where(key == value).values(failures=table.failures + 1),
                execution_options={"synchronize_session": False},
            )
        session.flush()
    failures = session.scalar(select(table.failures).where(key == value)) or 0
    if failures >= max_failures:
        session.execute(
            update(table)
            .where(key == value, table.locked_until.is_(None))
            .values(locked_until=now.astimezone(UTC) + timedelta(seconds=cooldown_seconds)),
            execution_options={"synchronize_session": False},
        )
    session.commit()
    return failures


# -- lookup and administration -------------------------------------------------


def find_by_phone(session: Session, keys: DataKeys, phone: str) -> Resident | None:
    """The resident with this phone (any accepted spelling), or None; InvalidField for a malformed phone."""
    phone_hash = keys.lookup_hash(identity.normalize_phone(phone), purpose=PHONE_PURPOSE)
    return session.scalar(select(Resident).where(Resident.phone_hash == phone_hash))


def set_category(session: Session, keys: DataKeys, phone: str, category: str | None) -> Resident:
    """Set (or, with None, clear) the category an administrator gives a resident; committed.

    ``category``: ``student``, ``disabled``, ``child`` or None. ResidentNotFound
    when no resident has the phone.
    """
    if category is not None and category not in ADMIN_CATEGORIES:
        raise InvalidField(
            "category",
            f"the category must be one of {', '.join(ADMIN_CATEGORIES)}, or none"
            + (" (senior follows from the birth date)" if category == "senior" else ""),
            code="invalid_category",
        )
    resident = find_by_phone(session, keys, phone)
    if resident is None:
        raise ResidentNotFound()
    resident.category = category
    session.commit()
    log.info("resident %d: category set to %s", resident.id, category or "none")
    return resident


def revoke(session: Session, keys: DataKeys, phone: str, *, now: datetime) -> Resident:
    """Revoke the resident with this phone; committed. Idempotent: a second call changes nothing.

    From then on no code is issued to them (403 ``code_revoked``), the verify
    endpoint answers ``revoked`` for a code they still hold, and their code
    id (``sub``) is on the revocation list offline verifiers fetch.
    ResidentNotFound when no resident has the phone.
    """
    now = _aware(now)
    resident = find_by_phone(session, keys, phone)
    if resident is None:
        raise ResidentNotFound()
    if resident.revoked_at is None:
        resident.revoked_at = now.astimezone(UTC)
        session.commit()
        log.info("resident %d: revoked", resident.id)
    return resident


@dataclass(frozen=True)
class Reassignment:
    """What :func:`reassign` did: the account it closed and the one it opened for the owner."""

    closed: Resident
    opened: Resident


VACATED = "vacated:"
"""Starts the lookup hash a closed account keeps in place of a reassigned identity (or phone)."""


def reassign(
    session: Session,
    keys: DataKeys,
    *,
    id_type: str,
    id_number: str,
    phone: str,
    name: str,
    password: str,
    staff: str,
    now: datetime,
) -> Reassignment:
    """Give an identity document to its owner, after staff checked their ID document in person; committed.

    The account that holds the identity (a squatter's, or an old one) is
    closed: revoked (no code is issued to it and its code id joins the
    revocation list), its sessions ended (``auth_epoch``), the identity and
    the birth date it gave taken off it, and the phone too when it is the
    owner's. A new account is opened for the owner with their phone, their
    name as on the document and the password they chose, checked as at
    registration. One line on the ``codeservice.audit`` logger names the staff
    member, the two accounts and the identity's keyed hash, never the number.

    InvalidField for a staff name, field or password that will not do;
    IdentityNotFound when no account holds the identity (the owner can simply
    register); PhoneTaken when another account than the one closed has the
    phone.
    """
    now = _aware(now)
    staff = _staff_name(staff)
    fields = {"name": name, "id_type": id_type, "id_number": id_number, "phone": phone, "password": password}
    registration = identity.validate_registration(fields, today=now.astimezone(CHINA_TIME).date())
    id_hash = keys.lookup_hash(registration.id_number, purpose=_id_hash_purpose(registration.id_type))
    phone_hash = keys.lookup_hash(registration.phone, purpose=PHONE_PURPOSE)
    try:
        holder = session.scalar(select(Resident).where(Resident.id_number_hash == id_hash).with_for_update())
        if holder is None:
            raise IdentityNotFound("no resident has this identity document; its owner can register")
        phone_holder = session.scalar(select(Resident.id).where(Resident.phone_hash == phone_hash))
        if phone_holder is not None and phone_holder != holder.id:
            raise PhoneTaken(
                "this phone number already has an account of its own, for another identity document; "
                "give a phone number that has no account"
            )
    except (IdentityNotFound, PhoneTaken):
        session.rollback()
        raise
    if holder.revoked_at is None:
        holder.revoked_at = now.astimezone(UTC)
    holder.auth_epoch += 1
    holder.id_number_hash = _vacated()
    holder.id_number_encrypted = keys.encrypt("", purpose=ID_NUMBER_PURPOSE)
    holder.birth_date = None
    if phone_holder == holder.id:
        holder.phone_hash = _vacated()
        holder.phone_encrypted = keys.encrypt("", purpose=PHONE_PURPOSE)
    session.flush()
    opened = _new_resident(keys, registration, id_hash=id_hash, phone_hash=phone_hash, now=now)
    session.add(opened)
    try:
        session.commit()
    except IntegrityError:
        # A registration took the phone meanwhile.
        session.rollback()
        raise PhoneTaken() from None
    audit_log.info(
        "identity reassigned by staff %r after an in-person ID check: resident %d closed "
        "(revoked, sessions ended), resident %d opened for the owner; %s, keyed hash %s",
        staff,
        holder.id,
        opened.id,
        registration.id_type,
        id_hash,
    )
    return Reassignment(closed=holder, opened=opened)


def _staff_name(value: str) -> str:
    staff = " ".join(value.split()) if identity.is_utf8_text(value) else ""
    if not staff or len(staff) > 100 or any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in staff):
        raise InvalidField(
            "staff", "name the staff member who checked the ID document (1 to 100 characters)", code="invalid_staff"
        )
    return staff


def _vacated() -> str:
    """A lookup hash no value has: a closed account keeps it in place of one it gave up."""
    return VACATED + secrets.token_hex(16)


# -- categories ----------------------------------------------------------------


def code_category(resident: Resident, now: int, senior_age: int = DEFAULT_SENIOR_AGE) -> str | None:
    """The concession category (the code's ``cat``) at ``now``, seconds since the epoch.

    ``disabled`` (set by an administrator) first, then ``senior`` from the
    birth date, then the administrator's ``student`` or ``child``.
    """
    category = resident.category
    if category == "disabled":
        return category
    if resident.birth_date is not None:
        today = datetime.fromtimestamp(now, CHINA_TIME).date()
        if age_on(resident.birth_date, today) >= senior_age:
            return "senior"
    return category


def age_on(birth_date: date, day: date) -> int:
    """Completed years of age on ``day``; the birthday itself counts (29 February: from 1 March)."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


# -- display -------------------------------------------------------------------


def masked_name(name: str) -> str:
    """The name as shown back: enough for its owner to recognise, little for anyone else.

    Chinese (and other non-Latin) names keep the first and last character,
    each one between becoming ``*``: 张三明 -> 张*明, 欧阳娜娜 -> 欧**娜; a
    two-character name keeps the first: 张三 -> 张*; one character stays as it
    is. Latin-script names keep each word's initial: John Smith -> J*** S****.
    """
    name = name.strip()
    if _is_latin(name):
        return " ".join(word[:1] + "*" * (len(word) - 1) for word in name.split())
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def _is_latin(name: str) -> bool:
    letters = [ch for ch in name if ch.isalpha()]
    return bool(letters) and all(unicodedata.name(ch, "").startswith("LATIN") for ch in letters)


def masked_phone(phone: str) -> str:
    """A normalised phone with its middle hidden: 138****5678."""
    return phone[:3] + "****" + phone[-4:] if len(phone) == 11 else "*" * len(phone)


# -- helpers -------------------------------------------------------------------


def _aware(now: datetime) -> datetime:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime, e.g. datetime.now(UTC)")
    return now

