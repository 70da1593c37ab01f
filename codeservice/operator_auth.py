"""Operator sessions: the console's own signed cookie, naming the operator, their auth epoch and the login's time.

Requests under ``/console`` read and write this cookie instead of the
resident's (``factory.CookieSessions``): ``__Host-codeservice_console``
(``codeservice_console`` in development), HttpOnly, SameSite=Strict, Secure
outside development, signed with a salt of its own, ending with the browser
and never living past ``LOGIN_LIFETIME`` from its login. A resident's
session is never seen under ``/console``, and an operator's never elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import session as cookie
from sqlalchemy import select

from . import db
from .models import Operator

__all__ = ["COOKIE_SALT", "PREFIX", "cookie_name", "current_operator", "is_console_path", "log_in", "log_out"]

PREFIX = "/console"
COOKIE = "codeservice_console"
COOKIE_SALT = "codeservice-console-session"
"""Not Flask's ``cookie-session``: a resident's cookie renamed is no operator's."""
DEVICE_COOKIE = "codeservice_console_device"
"""The console login's device cookie (the login throttles'): apart from a resident's on the same browser."""
LOGIN_LIFETIME = timedelta(hours=12)


def is_console_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def cookie_name(*, secure: bool) -> str:
    return f"__Host-{COOKIE}" if secure else COOKIE


def device_cookie_name(*, secure: bool) -> str:
    return f"__Host-{DEVICE_COOKIE}" if secure else DEVICE_COOKIE


def log_in(operator: Operator) -> None:
    cookie.clear()
    cookie["operator"] = operator.id
    cookie["epoch"] = operator.auth_epoch
    cookie["login_at"] = int(time.time())
    cookie.permanent = False


def refresh_epoch(operator: Operator) -> None:
    """After a password change (which ends the account's other sessions), keep this one."""
    cookie["epoch"] = operator.auth_epoch


def log_out() -> None:
    operator = current_operator()
    if operator is not None:
        operator.auth_epoch += 1
        db.session().commit()
    cookie.clear()


def current_operator() -> Operator | None:
    """The logged-in operator, or None."""
    operator_id, epoch, ends_at = cookie.get("operator"), cookie.get("epoch"), session_ends_at(cookie)
    if type(operator_id) is not int or ends_at is None or time.time() >= ends_at.timestamp():
        return None
    operator = db.session().scalar(select(Operator).where(Operator.id == operator_id))
    if operator is None or operator.auth_epoch != epoch:
        return None
    return operator


def session_ends_at(session: Mapping[str, Any]) -> datetime | None:
    login_at = session.get("login_at")
    if type(login_at) is not int:
        return None
    return datetime.fromtimestamp(login_at, UTC) + LOGIN_LIFETIME
