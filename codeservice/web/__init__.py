"""The mobile web pages: register, log in, show the live code, history.

Server-rendered HTML that works without JavaScript; ``static/code.js`` then
renews the code on ``/code`` in place through ``GET /api/v1/code``. Nothing
is inline (no ``<script>`` body, no ``on...=`` attribute) and nothing is
loaded from outside the service, so a strict Content-Security-Policy holds.
Strings come from :mod:`.i18n`; forms carry a CSRF token (:mod:`.csrf`).
"""

from __future__ import annotations

import hashlib
import math
import time
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from markupsafe import Markup
from werkzeug.wrappers import Response  # what views return: flask's make_response and redirect's alike

from verifiers.contract import CATEGORIES

from .. import auth, codes, db, device_cookies, identity, paper, paper_card, residents, usage
from ..context import data_keys, scene_registry
from ..errors import ClientError, CodeRevoked, InvalidCursor, RateLimited, TooManyAttempts
from ..identity import ID_TYPES, REGISTRATION
from . import csrf, history_view, i18n
from .scanner import scanner_pages

web = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

REGISTER_FIELDS = tuple(member.name for member in REGISTRATION)  # the form holds what the JSON body does
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
# The registration rules the messages and hints quote (codeservice.identity).
RULES = {"min": identity.MIN_PASSWORD_LENGTH, "max_name": identity.MAX_NAME_LENGTH}
HISTORY_PAGE_SIZE = 20
# The device endpoints of contract section 4, called by static/device.js and devices.js.
DEVICES_API = "/api/v1/devices"
MY_DEVICES_API = "/api/v1/me/devices"
# Logging out leaves nothing of the resident in the browser: the service
# worker's caches, IndexedDB (the device key and credential) and the worker.
CLEAR_SITE_DATA = '"cache", "storage"'

# Sent with every page (not the static files) unless the app sets its own.
# The pages need nothing but their own origin: the QR is inline SVG, the
# script and style sheet are files under /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


# /scanner, nested: the pages' language, templates and headers, its own session and CSRF.
web.register_blueprint(scanner_pages)


def init_app(app: Flask) -> None:
    app.register_blueprint(web)


# -- rendering helpers -------------------------------------------------------


@web.context_processor
def template_globals() -> dict[str, Any]:
    """What every page's template may use (the console's too, :mod:`.console`)."""
    lang = i18n.current_language()
    return {
        "lang": lang,
        "html_lang": i18n.HTML_LANG[lang],
        "other_lang": next(code for code in i18n.LANGUAGES if code != lang),
        "t": lambda key, **values: i18n.translate(key, lang, **values),
        "csrf_field": csrf.FIELD,
        "csrf_token": csrf.token,
        "notices": _notices,
        "rules": RULES,
    }


def _notices() -> list[str]:
    """Flashed catalogue keys, translated (anything else is dropped)."""
    return [i18n.translate(key) for key in get_flashed_messages() if isinstance(key, str) and i18n.has(key)]


def _page(template: str, status: int = 200, **context: Any) -> Response:
    response = current_app.make_response(render_template(f"web/{template}", **context))
    response.status_code = status
    return response


def _see_other(endpoint: str) -> Response:
    """The redirect after a POST (303: the browser follows with a GET)."""
    return redirect(url_for(endpoint), code=303)


def _now() -> datetime:
    return datetime.now(UTC)


@web.after_request
def page_headers(response: Response) -> Response:
    """No caching, and the strict policy, on every page (the console's too)."""
    if request.endpoint == "web.static":
        return response
    # Pages hold a CSRF token or a live code: never cache or share them.
    response.headers["Cache-Control"] = "no-store"
    for name, value in PAGE_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@web.before_request
def _check_csrf() -> Response | None:
    if request.method == "POST" and request.blueprint != "web.scanner" and not csrf.is_valid():
        return _page(
            "message.html",
            400,
            title_key="csrf_title",
            message_key="csrf_message",
            back=request.path,  # the form again, with a fresh token
        )
    return None


def _is_local_path(target: str) -> bool:
    """A path on this site (``/code``), not a URL elsewhere (``//evil``, ``/\\evil``, ``/\\t/evil``)."""
    return (
        target.startswith("/")
        and not target.startswith("//")
        and all(ch.isprintable() and not ch.isspace() and ch != "\\" for ch in target)
    )


def _error_message(error: ClientError, field_labels: dict[str, str]) -> str:
    """The localized message for a service error code (its field's label as a fallback)."""
    if isinstance(error, TooManyAttempts):
        minutes = max(1, math.ceil(error.retry_after / 60)) if error.retry_after else 1
        return i18n.translate("err_too_many_attempts", minutes=minutes)
    key = f"err_{error.code}"
    if i18n.has(key):
        return i18n.translate(key, None, **RULES)
    field = getattr(error, "field", None)
    if field in field_labels:
        return i18n.translate("err_invalid_field", field=field_labels[field])
    return i18n.translate("err_generic")


def _field_labels() -> dict[str, str]:
    return {name: i18n.translate(f"field_{name}") for name in REGISTER_FIELDS}


@web.errorhandler(RateLimited)
def _rate_limited(error: RateLimited) -> Response:
    """Over a rate limit (:mod:`codeservice.protection`): the form again, with the message in the page's language."""
    message = i18n.translate("err_too_many_attempts", minutes=max(1, math.ceil(error.retry_after / 60)))
    if request.endpoint == "web.register":
        values = {name: request.form.get(name, "") for name in REGISTER_FIELDS if name != "password"}
        page = render_template("web/register.html", values=values, id_types=ID_TYPES, error=message, error_field=None)
    elif request.endpoint == "web.login":
        page = render_template("web/login.html", phone=request.form.get("phone", ""), error=message)
    else:
        page = message
    response = current_app.make_response((page, error.status))
    response.headers["Retry-After"] = str(error.retry_after)
    return response


# -- pages -------------------------------------------------------------------


@web.get("/")
def index() -> Response:
    logged_in = auth.current_resident(required=False) is not None
    return redirect(url_for("web.code_page" if logged_in else "web.login"))


@web.get("/lang/<lang>")
def set_language(lang: str) -> Response:
    """The language toggle: remember the choice in a cookie, back to the page."""
    target = request.args.get("next", "")
    response = redirect(target if _is_local_path(target) else url_for("web.index"))
    if lang in i18n.LANGUAGES:
        response.set_cookie(
            i18n.LANG_COOKIE,
            lang,
            max_age=LANG_COOKIE_MAX_AGE,
            samesite="Lax",
            httponly=True,
            secure=current_app.config["SESSION_COOKIE_SECURE"],
        )
    return response


@web.route("/register", methods=["GET", "POST"])
def register() -> Response:
    if request.method == "GET" and auth.current_resident(required=False) is not None:
        return redirect(url_for("web.code_page"))
    values = {name: request.form.get(name, "") for name in REGISTER_FIELDS if name != "password"}
    if request.method == "GET":
        return _page("register.html", values=values, id_types=ID_TYPES, error=None, error_field=None)
    fields = {name: value.strip() for name, value in values.items()}
    fields["password"] = request.form.get("password", "")
    try:
        resident = residents.register(db.session(), data_keys(), fields, now=_now())
    except ClientError as error:
        return _page(
            "register.html",
            error.status,
            values=values,
            id_types=ID_TYPES,
            error=_error_message(error, _field_labels()),
            error_field=_error_field(error),
        )
    auth.log_in(resident)
    response = _see_other("web.code_page")
    device_cookies.remember(response, resident)
    return response


def _error_field(error: ClientError) -> str | None:
    field = getattr(error, "field", None)
    if field is None:
        field = {"identity_taken": "id_number", "phone_taken": "phone"}.get(error.code)
    return field if field in REGISTER_FIELDS else None


@web.route("/login", methods=["GET", "POST"])
def login() -> Response:
    if request.method == "GET":
        if auth.current_resident(required=False) is not None:
            return redirect(url_for("web.code_page"))
        return _page("login.html", phone="", error=None)
    phone = request.form.get("phone", "").strip()
    password = request.form.get("password", "")
    config = current_app.config
    try:
        resident = residents.authenticate(
            db.session(),
            data_keys(),
            phone,
            password,
            now=_now(),
            max_failures=config.get("LOGIN_MAX_FAILURES", residents.DEFAULT_MAX_FAILURES),
            cooldown_seconds=config.get("LOGIN_COOLDOWN", residents.DEFAULT_COOLDOWN_SECONDS),
            device_cookie=device_cookies.presented(),
        )
    except ClientError as error:
        response = _page("login.html", error.status, phone=phone, error=_error_message(error, _field_labels()))
        if error.retry_after:
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    auth.log_in(resident)
    response = _see_other("web.code_page")
    device_cookies.remember(response, resident)
    return response


@web.post("/logout")
def logout() -> Response:
    auth.log_out()
    flash("logged_out")
    response = _see_other("web.login")
    response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA
    return response


@web.get("/code")
def code_page() -> Response:
    resident = auth.current_resident(required=False)
    if resident is None:
        return redirect(url_for("web.login"))
    now = int(time.time())
    category = residents.code_category(
        resident, now, current_app.config.get("SENIOR_AGE", residents.DEFAULT_SENIOR_AGE)
    )
    context: dict[str, Any] = {
        "masked_name": residents.masked_name(resident.name),
        "category": category if category in CATEGORIES else None,
        "server_now": now,
        "ttl": current_app.config["CODE_TTL"],
        "code": None,
        "device_owner": _device_owner(resident.code_id),
        "devices_api": request.script_root + DEVICES_API,
    }
    try:
        context["code"] = _first_code()
    except CodeRevoked:
        return _page("code.html", 403, revoked=True, **context)
    return _page("code.html", revoked=False, **context)


def _device_owner(code_id: str) -> str:
    """Whose device state the browser holds: a digest of the code id, which every code carries anyway."""
    return hashlib.sha256(f"codeservice device owner:{code_id}".encode()).hexdigest()[:32]


@web.get("/code/shell")
def code_shell() -> Response:
    """The page the service worker shows for /code with no network: no resident's data, no session."""
    return _page("code_shell.html", devices_api=request.script_root + DEVICES_API)


@web.get("/sw.js")
def service_worker() -> Response:
    """The service worker, from the root so that its scope may be /code."""
    return send_from_directory(web.static_folder or "static", "sw.js", mimetype="text/javascript", max_age=0)


@web.get("/devices")
def devices_page() -> Response:
    """The resident's enrolled phones, listed and withdrawn by static/devices.js through the API."""
    resident = auth.current_resident(required=False)
    if resident is None:
        return redirect(url_for("web.login"))
    # A resident who later gets a phone learns that the card is still live, and how to end it.
    expires_at = paper.live_paper_until(db.session(), resident.id, _now())
    paper_until = None
    if expires_at is not None:
        last_day = paper_card.last_full_day(expires_at)
        paper_until = (paper_card.expiry_zh if i18n.current_language() == "zh" else paper_card.expiry_en)(last_day)
    return _page("devices.html", my_devices_api=request.script_root + MY_DEVICES_API, paper_until=paper_until)


def _first_code() -> dict[str, Any]:
    """The same payload ``GET /api/v1/code`` sends, rendered into the page."""
    payload = codes.code_payload(shown_as="page")
    # Our own QR renderer's output (codeservice.qr): rectangles, no user input.
    payload["qr_svg"] = Markup(payload["qr_svg"])
    return payload


@web.get("/history")
def history() -> Response:
    """The resident's usage history, newest first, a page at a time (``?before=`` a cursor)."""
    resident = auth.current_resident(required=False)
    if resident is None:
        return redirect(url_for("web.login"))
    before = request.args.get("before")
    try:
        page = usage.history(db.session(), resident.code_id, limit=HISTORY_PAGE_SIZE, before=before)
    except InvalidCursor:
        return _page(
            "message.html",
            400,
            title_key="history_bad_link_title",
            message_key="history_bad_link",
            back=url_for("web.history"),
        )
    lang = i18n.current_language()
    registry = scene_registry()
    return _page(
        "history.html",
        entries=[history_view.entry(row, lang, registry.usage_fields(row.scene)) for row in page.rows],
        next_cursor=page.next,
        first_page=before is None,
    )
