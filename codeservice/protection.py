"""Abuse protection: rate limits on the guessable endpoints, and security headers.

The limits are declared here by endpoint name (not by decorators in the route
modules), with Flask-Limiter:

- login (10/minute per client address): ``POST /api/v1/session``, ``POST /login``, ``POST /scanner/session``,
  ``POST /console/login``;
- register (5/minute per address): ``POST /api/v1/residents``, ``POST /register``;
- code (60/minute per logged-in resident, else per address): ``GET /api/v1/code``,
  ``GET /api/v1/code.png``, ``GET /code``;
- verify (1200/minute per scanner key hash): ``POST /api/v1/verify``, ``POST /scanner/verify``.

The endpoints of one budget share it (a web login and an API login count
against the same 10). Verify is keyed by the scanner rather than the address:
many gates share one NAT. The counters live in ``RATE_LIMIT_STORAGE_URL``:
``memory://`` (one process) by default, ``redis://...`` in production so the
budget holds across instances. ``RATE_LIMITS=off`` disables them all (load
tests, benchmarks).

A request over budget gets 429 ``rate_limited`` in the API's one error shape,
with ``Retry-After``; a web form gets its page again with a localized message
(the answer the view's own error handlers give :class:`~codeservice.errors.RateLimited`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from flask import Flask, Response, current_app, request
from flask.typing import RouteCallable
from flask_limiter import Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse_many

from . import scanner_sessions
from .auth import session_resident
from .errors import ConfigError, RateLimited
from .http import error_response
from .scanners import bearer_key, hash_key

__all__ = ["CONTENT_SECURITY_POLICY", "LIMITS", "init_app"]

# Sent with every response unless the view (or the web blueprint, whose
# pages set their own, stricter policy) already set it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
HSTS = "max-age=31536000; includeSubDomains"
KEY_PREFIX = "codeservice"


def _by_address() -> str:
    return f"ip:{get_remote_address()}"


def _by_resident() -> str:
    """The logged-in resident (many residents may share an address), else the address."""
    code_id = session_resident()
    return f"resident:{code_id}" if code_id is not None else _by_address()


def _by_scanner() -> str:
    """The scanner key's hash (as :mod:`codeservice.scanners` stores it; a ``/scanner`` session names it), else
    the address."""
    key = bearer_key(request.headers.get("Authorization"))
    key_hash = hash_key(key) if key is not None else scanner_sessions.presented_key_hash()
    return _by_address() if key_hash is None else "scanner:" + key_hash


@dataclass(frozen=True)
class Budget:
    config_key: str
    endpoints: tuple[str, ...]
    key: Any
    methods: tuple[str, ...]


# Budget name (the shared scope) -> where it applies. The limit itself is the
# configuration value ``config_key`` (``CODESERVICE_RATE_LIMIT_LOGIN=20/minute``).
LIMITS: dict[str, Budget] = {
    "login": Budget(
        "RATE_LIMIT_LOGIN",
        ("api.log_in", "web.login", "web.scanner.sign_in", "console.login"),
        _by_address,
        ("POST",),
    ),
    "register": Budget("RATE_LIMIT_REGISTER", ("api.register", "web.register"), _by_address, ("POST",)),
    "code": Budget(
        "RATE_LIMIT_CODE",
        (
            "api.code",
            "api.code_png",
            "web.code_page",
            "api.enrol_device",
            "api.refresh_device_credential",
            "api.my_devices",
            "api.withdraw_device",
        ),
        _by_resident,
        ("GET", "POST", "DELETE"),
    ),
    "verify": Budget("RATE_LIMIT_VERIFY", ("api.verify", "web.scanner.verify"), _by_scanner, ("POST",)),
}


def rate_limits_enabled(config: Any) -> bool:
    value = str(config.get("RATE_LIMITS", "on")).strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"RATE_LIMITS must be on or off, got {config.get('RATE_LIMITS')!r}")
    return value == "on"


def init_app(app: Flask) -> None:
    """Security headers on every response; rate limits unless ``RATE_LIMITS=off``.

    Call after the blueprints are registered: the limits wrap their views.
    """
    app.after_request(_security_headers(security_headers(app.config)))
    if not rate_limits_enabled(app.config):
        return
    storage = app.config.get("RATE_LIMIT_STORAGE_URL") or "memory://"
    limiter = Limiter(
        _by_address,
        storage_uri=storage,
        strategy="fixed-window",
        key_prefix=KEY_PREFIX,
        # Redis unreachable: count in this process rather than fail every request.
        in_memory_fallback_enabled=not storage.startswith("memory://"),
        on_breach=_on_breach,
        headers_enabled=False,
    )
    limiter.init_app(app)
    for scope, budget in LIMITS.items():
        value = app.config.get(budget.config_key)
        try:
            if not isinstance(value, str):
                raise TypeError(value)
            parse_many(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{budget.config_key} must be a rate such as 10/minute, got {value!r}") from None
        decorate = limiter.shared_limit(value, scope, key_func=budget.key, methods=list(budget.methods))
        for endpoint in budget.endpoints:
            # flask-limiter types its decorator for async views too; a sync view stays one
            app.view_functions[endpoint] = cast(RouteCallable, decorate(app.view_functions[endpoint]))
    app.register_error_handler(RateLimitExceeded, _handle_rate_limited)


def _retry_after(limit: RequestLimit) -> int:
    reset_at = limit.window[0]  # the window's end, in epoch seconds
    return max(1, math.ceil(reset_at - time.time()))


def _on_breach(limit: RequestLimit) -> Response:
    """The answer the view would give had it raised :class:`RateLimited`: the one JSON error, or the web's page."""
    error = RateLimited(retry_after=_retry_after(limit))
    return current_app.make_response(current_app.handle_user_exception(error))


def _handle_rate_limited(error: RateLimitExceeded) -> Response:
    if isinstance(error.response, Response):  # _on_breach's
        return error.response
    return error_response(RateLimited(retry_after=60))


def security_headers(config: Any) -> tuple[tuple[str, str], ...]:
    """The headers every response carries: ``SECURITY_HEADERS``, and HSTS outside development.

    Flask's responses get them below; ``/metrics``, served in front of Flask,
    from :mod:`codeservice.observability`.
    """
    hsts = () if config.get("ENV") == "development" else (("Strict-Transport-Security", HSTS),)
    return (*SECURITY_HEADERS.items(), *hsts)


def _security_headers(added: tuple[tuple[str, str], ...]) -> Callable[[Response], Response]:
    """The after-request hook that adds ``added`` (made once per app) where the view set none of them."""
    lowered = tuple((name.lower(), name, value) for name, value in added)

    def add(response: Response) -> Response:
        headers = response.headers
        present = {name.lower() for name in headers.keys()}  # one pass, not one scan per header
        for lower, name, value in lowered:
            if lower not in present:
                headers.add(name, value)
        return response

    return add
