"""Operators: the accounts of the operator console (``/console``). No Flask here.

``operators add`` makes an account with a random first password, printed
once; the console asks for a new one before anything else
(``must_change_password``). An operator sees every venue's data, or only the
venues named when the account was made. Logins are throttled exactly as
residents' are (:func:`codeservice.residents.throttled_attempt`: a device
cookie's own count, else the account's, five failures then 900 s), the
account named by a keyed hash with its own purpose so that it never shares a
count with a phone. Passwords: scrypt, and the residents' strength rules.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from . import identity, residents
from .errors import BadCredentials, InvalidField, OperatorExists, OperatorNotFound
from .models import Operator
from .pii import DataKeys

__all__ = [
    "USERNAME",
    "add_operator",
    "authenticate",
    "change_password",
    "list_operators",
    "remove_operator",
    "sees",
]

log = logging.getLogger(__name__)
audit_log = logging.getLogger("codeservice.audit")

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""An operator's username: lower-case letters, digits, '.', '_' and '-', at most 64."""
VENUE = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
ACCOUNT_PURPOSE = "operator"
"""The keyed hash naming an operator account in the login throttles (a phone's purpose is ``phone``)."""


def _username(value: str) -> str:
    username = value.strip().lower()
    if not USERNAME.fullmatch(username):
        raise InvalidField(
            "username", "a username is 1 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
            code="invalid_username",
        )
    return username


def add_operator(
    session: Session, username: str, venues: Iterable[str], *, now: datetime, password: str | None = None
) -> tuple[Operator, str]:
    """A new operator and its first password (to show once); committed. ``venues`` empty: every venue.

    ``password``: a chosen one, not to be changed at the first login (``./dev run``'s demo operator).
    """
    name = _username(username)
    named = []
    for venue in venues:
        if not VENUE.fullmatch(venue) or not venue.strip():
            raise InvalidField("venue", "a venue is 1 to 100 characters, no control characters", code="invalid_venue")
        if venue not in named:
            named.append(venue)
    if session.scalar(select(Operator.id).where(Operator.username == name)) is not None:
        raise OperatorExists()
    chosen = password is not None
    password = password if password is not None else secrets.token_urlsafe(12)  # 96 bits; changed at first login
    operator = Operator(
        username=name,
        password_hash=generate_password_hash(password),
        must_change_password=not chosen,
        venues=named,
        auth_epoch=0,
        created_at=now.astimezone(UTC),
    )
    session.add(operator)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise OperatorExists() from None
    audit_log.info("operator %r added (venues: %s)", name, ", ".join(named) or "all")
    return operator, password


def list_operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.username)))


def remove_operator(session: Session, username: str) -> None:
    """Delete the account (its sessions end with it); OperatorNotFound if there is none."""
    operator = find(session, username)
    if operator is None:
        raise OperatorNotFound()
    session.delete(operator)
    session.commit()
    audit_log.info("operator %r removed", operator.username)


def find(session: Session, username: str) -> Operator | None:
    name = username.strip().lower()
    return session.scalar(select(Operator).where(Operator.username == name)) if USERNAME.fullmatch(name) else None


def account_hash(keys: DataKeys, username: str) -> str:
    """The keyed hash naming this username in the login throttles and device cookies."""
    return keys.lookup_hash(username.strip().lower(), purpose=ACCOUNT_PURPOSE)


def authenticate(
    session: Session,
    keys: DataKeys,
    username: str,
    password: str,
    *,
    now: datetime,
    max_failures: int = residents.DEFAULT_MAX_FAILURES,
    cooldown_seconds: int = residents.DEFAULT_COOLDOWN_SECONDS,
    device_cookie: str | None = None,
) -> Operator:
    """The operator with this username and password, throttled as residents' logins are.

    An unknown username and a wrong password are the same BadCredentials after
    the same work; TooManyAttempts during a cool-down, the right password included.
    """
    name = username.strip().lower() if identity.is_utf8_text(username) else ""
    known = USERNAME.fullmatch(name) is not None
    counter = residents.throttled_attempt(
        session, keys, account_hash(keys, name) if known else None, device_cookie, now=now
    )
    operator = find(session, name) if known else None
    candidate = identity.normalize_password(password) if identity.is_utf8_text(password) else ""
    if operator is not None:
        ok = check_password_hash(operator.password_hash, candidate)
    else:
        residents.dummy_password_check(candidate)
        ok = False
    residents.settle_attempt(
        session, counter, ok, now=now, max_failures=max_failures, cooldown_seconds=cooldown_seconds
    )
    assert operator is not None
    log.info("operator %d logged in", operator.id)
    return operator


def change_password(session: Session, operator: Operator, current: str, new: str) -> None:
    """Set a new password (the residents' strength rules; not the current one); committed.

    BadCredentials when ``current`` is wrong; InvalidField (``weak_password``)
    for a new one that will not do. Other sessions of the account end.
    """
    if not check_password_hash(operator.password_hash, identity.normalize_password(current)):
        raise BadCredentials("the current password is wrong")
    known = (operator.username,) if len(operator.username) >= 4 else ()
    password = identity.check_password(new, known=known)
    if check_password_hash(operator.password_hash, password):
        raise InvalidField("password", "choose a password other than the current one", code="weak_password")
    operator.password_hash = generate_password_hash(password)
    operator.must_change_password = False
    operator.auth_epoch += 1
    session.commit()
    audit_log.info("operator %r changed their password", operator.username)


def sees(operator: Operator, venue: str | None) -> bool:
    """Whether the operator may see ``venue`` (None: every venue they see)."""
    return not operator.venues or (venue is not None and venue in operator.venues)
