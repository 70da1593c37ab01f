"""CSRF protection for the HTML forms: a synchroniser token.

A random token lives in the (signed) session cookie and in a hidden field of
every form; a POST must send it back. Logging in clears the session, so each
login starts with a new token.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

FIELD = "csrf_token"
SESSION_KEY = "csrf"
TOKEN_BYTES = 32


def token() -> str:
    """This session's token, created on first use."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, str) or not value:
        value = session[SESSION_KEY] = secrets.token_urlsafe(TOKEN_BYTES)
    return value


def is_valid() -> bool:
    """Whether the request's form carries this session's token."""
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FIELD)
    if not isinstance(expected, str) or not expected or not sent:
        return False
    return hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))
