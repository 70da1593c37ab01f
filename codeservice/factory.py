"""``create_app()``: wires configuration, storage, keys and routes (each module sets itself up in its ``init_app``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import click
from flask import Flask, Request, Response, has_request_context, request
from flask.sessions import (
    SecureCookieSession,
    SecureCookieSessionInterface,
    SessionMixin,
)
from itsdangerous import URLSafeTimedSerializer
from werkzeug.middleware.proxy_fix import ProxyFix

from . import (
    api,
    auth,
    cli,
    context,
    db,
    http,
    keystore,
    observability,
    operator_auth,
    protection,
    scanning,
    web,
)
from .config import load_config
from .errors import ConfigError, KeyStoreError
from .pii import DataKeys
from .web import console

__all__ = ["MAX_BODY_BYTES", "create_app"]

MAX_BODY_BYTES = 1024 * 1024
SESSION_LIFETIME = timedelta(days=30)
"""The sliding lifetime: from the session's last use. It never outlives ``auth.LOGIN_LIFETIME``."""
SESSION_COOKIE = "codeservice_session"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The Flask application: defaults, then ``CODESERVICE_*`` variables, then ``config``."""
    try:
        return _wire(load_config(config))
    except ConfigError as exc:
        if click.get_current_context(silent=True) is not None:
            # Loaded by `flask --app codeservice ...`: one line, not a traceback.
            raise click.ClickException(f"configuration: {exc.message}") from None
        raise


def _wire(settings: Mapping[str, Any]) -> Flask:
    app = Flask("codeservice", instance_relative_config=True, static_folder=None)
    app.config.from_mapping(settings)
    # A relative keys directory means the one under the working directory.
    app.config["KEYS_DIR"] = os.path.abspath(app.config["KEYS_DIR"])
    development = app.config["ENV"] == "development"
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not development,
        # Over https the __Host- prefix: the browser keeps it only if Secure, Path=/ and
        # without Domain, so no sibling subdomain or plain-http page can set it.
        SESSION_COOKIE_NAME=SESSION_COOKIE if development else "__Host-" + SESSION_COOKIE,
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN=None,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.session_interface = CookieSessions()
    keystore.init_app(app)
    context.init_scenes(app)
    app.secret_key = app.config["SECRET_KEY"] or _session_secret(app)
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    db.init_app(app)
    scanning.init_app(app)
    observability.init_app(app)
    http.init_app(app)
    api.init_app(app)
    web.init_app(app)
    console.init_app(app)
    protection.init_app(app)
    cli.init_app(app)
    return app


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, skipping the signer for requests that carry no session cookie.

    Scanners and the public endpoints never send one, and building the
    signer was a sizeable share of a small request's time.

    Under ``/console`` the session is the operator's, a cookie of its own
    (:mod:`codeservice.operator_auth`): another name, signed with another
    salt, SameSite=Strict. The resident's cookie is never read there, and
    the operator's nowhere else, so neither session reaches the other's pages.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified and not session.accessed:
            return  # what Flask's does for such a session, without first working out the cookie's attributes
        super().save_session(app, session, response)

    def get_cookie_name(self, app: Flask) -> str:
        if _in_console():
            return operator_auth.cookie_name(secure=app.config["SESSION_COOKIE_SECURE"])
        return super().get_cookie_name(app)

    def get_cookie_samesite(self, app: Flask) -> str | None:
        return "Strict" if _in_console() else super().get_cookie_samesite(app)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not _in_console():
            return super().get_signing_serializer(app)
        if not app.secret_key:
            return None
        keys = [*(app.config.get("SECRET_KEY_FALLBACKS") or ()), app.secret_key]  # the current key last
        return URLSafeTimedSerializer(
            keys,
            salt=operator_auth.COOKIE_SALT,
            serializer=self.serializer,
            signer_kwargs={"key_derivation": self.key_derivation, "digest_method": self.digest_method},
        )

    def get_expiration_time(self, app: Flask, session: SessionMixin) -> datetime | None:
        """The sliding expiry, but never past the login's absolute end."""
        expires = super().get_expiration_time(app, session)
        ends_at = operator_auth.session_ends_at(session) if _in_console() else auth.session_ends_at(session)
        return min(expires, ends_at) if expires is not None and ends_at is not None else expires


def _in_console() -> bool:
    return has_request_context() and operator_auth.is_console_path(request.path)


def _session_secret(app: Flask) -> str | None:
    """Without CODESERVICE_SECRET_KEY, derive one from the data key (shared by instances)."""
    try:
        return DataKeys.load(app.config["KEYS_DIR"]).session_secret
    except KeyStoreError:
        # No keys yet (`keys init` has not run): commands still work, pages
        # that need a session fail with "no secret key" until it has.
        return None
