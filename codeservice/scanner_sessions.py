"""The ``/scanner`` page's session: a scanner key exchanged once for a cookie of its own.

Venue staff sign in with the scanner's key (a form, with the page's CSRF
token); the key is checked like a ``Bearer`` key and then forgotten: the
browser gets a cookie, separate from the resident session, holding (signed
with the app's secret key, not encrypted) the key's SHA-256, as the
``scanners`` table stores it, and a CSRF token of its own. Nothing in it is
the key, and the page never sees the key again: it is in no page storage and
no URL.

- The cookie is HttpOnly, SameSite=Strict, Path=``/scanner`` (only the
  scanner's page and its JSON calls get it), and Secure wherever the
  resident session is; there it is a ``__Secure-`` cookie, so a plain-http
  page cannot set it. It ends :data:`SESSION_LIFETIME` after sign-in.
- Every request reads the scanner again by that hash (the verify path's own
  lookup, :func:`codeservice.scanners.scanner_by_hash`), so
  ``flask --app codeservice scanners revoke`` ends every session of the
  scanner at its next request, and a scanner row is never cached.
- The JSON calls send the session's CSRF token in the :data:`CSRF_HEADER`
  header; :func:`csrf_is_valid` compares it in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from .scan_cache import ScanDirectory
from .scan_store import DirectoryRows, ScanConnection, ScannerRow
from .scanners import hash_key, scanner_by_hash

__all__ = [
    "CSRF_HEADER",
    "PATH",
    "SESSION_LIFETIME",
    "cookie_name",
    "csrf_is_valid",
    "csrf_token",
    "end",
    "presented_key_hash",
    "scanner",
    "start",
]

NAME = "codeservice_scanner"
PATH = "/scanner"
SESSION_LIFETIME = 30 * 24 * 3600
"""A scanner session ends this long after its sign-in (a revoked scanner's at once)."""
CSRF_HEADER = "X-CSRF-Token"
_SALT = "codeservice scanner session"


def cookie_name() -> str:
    """``__Secure-codeservice_scanner`` when cookies are Secure (production), else ``codeservice_scanner``."""
    return f"__Secure-{NAME}" if current_app.config["SESSION_COOKIE_SECURE"] else NAME


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt=_SALT)


def _payload() -> dict[str, Any] | None:
    """The request's scanner cookie, signature and age checked; None without a good one."""
    value = request.cookies.get(cookie_name())
    if not value:
        return None
    try:
        payload = _serializer().loads(value, max_age=SESSION_LIFETIME)
    except BadSignature:  # SignatureExpired is one too
        return None
    if not isinstance(payload, dict) or not all(isinstance(payload.get(name), str) for name in ("k", "c")):
        return None
    return payload


def presented_key_hash() -> str | None:
    """The key hash the request's cookie names, not yet checked against the database (rate-limit keys)."""
    payload = _payload()
    return None if payload is None else str(payload["k"])


def scanner(directory: ScanDirectory, rows: DirectoryRows, connection: ScanConnection) -> ScannerRow:
    """The live scanner this request's session names, from the process's copy; 401 ``invalid_scanner_key`` else."""
    return scanner_by_hash(directory, rows, connection, presented_key_hash() or "")


def csrf_token() -> str | None:
    payload = _payload()
    return None if payload is None else str(payload["c"])


def csrf_is_valid(sent: str | None) -> bool:
    expected = csrf_token()
    if not expected or not sent:
        return False
    return hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


def start(response: Response, directory: ScanDirectory, connection: ScanConnection, key: str) -> ScannerRow:
    """Check ``key`` (401 ``invalid_scanner_key`` for an unknown or revoked one) and set its session on ``response``."""
    key_hash = hash_key(key.strip())
    row = scanner_by_hash(directory, directory.fresh(connection), connection, key_hash)
    value = _serializer().dumps({"k": key_hash, "c": secrets.token_urlsafe(32)})
    response.set_cookie(
        cookie_name(),
        value,
        max_age=SESSION_LIFETIME,
        path=PATH,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Strict",
    )
    return row


def end(response: Response) -> None:
    response.delete_cookie(
        cookie_name(),
        path=PATH,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Strict",
    )
