"""Resident sessions: a signed cookie naming the resident, their auth epoch and the login's time.

The cookie is signed, not encrypted: anyone holding it can read it. It names
the resident by their random code id (the ``sub`` of their codes), never by
the sequential database id.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, overload

from flask import session as cookie
from sqlalchemy import select

from . import db
from .errors import NotAuthenticated
from .models import Resident

LOGIN_LIFETIME = timedelta(days=30)
"""A session ends this long after its login, however often it is used meanwhile."""


def log_in(resident: Resident) -> None:
    cookie.clear()
    cookie["sub"] = resident.code_id
    cookie["epoch"] = resident.auth_epoch
    cookie["login_at"] = int(time.time())
    cookie.permanent = True


def log_out() -> None:
    """End this session and every other copy of its cookie."""
    resident = current_resident(required=False)
    if resident is not None:
        resident.auth_epoch += 1
        db.session().commit()
    cookie.clear()


@overload
def current_resident(*, required: Literal[True] = True) -> Resident: ...
@overload
def current_resident(*, required: bool) -> Resident | None: ...


def current_resident(*, required: bool = True) -> Resident | None:
    """The logged-in resident; when there is none, :class:`NotAuthenticated`, or None if not ``required``."""
    code_id, epoch = session_resident(), cookie.get("epoch")
    ends_at = session_ends_at(cookie)
    resident = None
    if code_id is not None and ends_at is not None and time.time() < ends_at.timestamp():
        resident = db.session().scalar(select(Resident).where(Resident.code_id == code_id))
    if resident is None or resident.auth_epoch != epoch:
        if required:
            raise NotAuthenticated()
        return None
    return resident


def session_resident() -> str | None:
    """The code id the session cookie names, not yet checked against the database (rate-limit keys)."""
    code_id = cookie.get("sub")
    return code_id if type(code_id) is str else None


def session_ends_at(session: Mapping[str, Any]) -> datetime | None:
    """When the session logged in at ``login_at`` ends; None for a session without a login."""
    login_at = session.get("login_at")
    if type(login_at) is not int:
        return None
    return datetime.fromtimestamp(login_at, UTC) + LOGIN_LIFETIME
