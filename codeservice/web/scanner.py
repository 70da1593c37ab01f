"""``/scanner``: the browser scanner for venue staff (a blueprint nested in the web pages').

Staff sign in once with the scanner's key (``POST /scanner/session``, a form
with the pages' CSRF token); the key becomes a scanner session of its own
(:mod:`codeservice.scanner_sessions`) and is never seen again. The page then
lets them pick a scene the key names and its context, and scans: the rear
camera decoded in the page (``static/scanner.js``) or a hardware reader typing
into it. Each code goes to ``POST /scanner/verify``, which takes the body of
``POST /api/v1/verify`` and runs its very path
(:func:`codeservice.scanning.verify_request`), authenticated by the session
and its CSRF token instead of a ``Bearer`` key; the answer adds the words
staff read (in the page's language) and the scanner's counts for the day.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from verifiers import Decision, declared_detail

from .. import db, scanner_sessions, usage
from ..context import scene_registry
from ..errors import CodeserviceError, RateLimited, ScannerCsrfFailed, ScannerKeyInvalid
from ..http import error_response
from ..scan_store import ScannerRow
from ..scanning import scan_connection, scan_directory, verify_request
from . import csrf, history_view, i18n

scanner_pages = Blueprint("scanner", __name__, url_prefix=scanner_sessions.PATH)

KEY_FIELD = "key"
MAX_KEY_LENGTH = 200
BUILT_IN_CONTEXTS = ("clinic", "transit", "venue")


def _now() -> datetime:
    return datetime.now(UTC)


def _page(template: str, status: int = 200, **context: Any) -> Response:
    response = current_app.make_response(render_template(f"web/{template}", **context))
    response.status_code = status
    return response


def _sign_in_page(status: int = 200, error: str | None = None, notice: str | None = None) -> Response:
    return _page("scanner_sign_in.html", status, error=error, notice=notice)


def _counts(scanner: ScannerRow) -> dict[str, int]:
    counts = usage.scanner_day_counts(db.session(), scanner.id, _now())
    return {"accepted": counts.accepted, "refused": counts.refused}


@scanner_pages.before_request
def _check_csrf() -> Response | None:
    """The sign-in form carries the pages' token; everything else the scanner session's."""
    if request.method != "POST":
        return None
    if request.endpoint == "web.scanner.sign_in":
        if csrf.is_valid():
            return None
        return _page("message.html", 400, title_key="csrf_title", message_key="csrf_message", back=request.path)
    sent = request.headers.get(scanner_sessions.CSRF_HEADER) or request.form.get(csrf.FIELD)
    if scanner_sessions.csrf_is_valid(sent):
        return None
    if request.endpoint == "web.scanner.verify":
        return error_response(ScannerCsrfFailed())
    return _sign_in_page(400, error=i18n.translate("csrf_message"))


@scanner_pages.errorhandler(RateLimited)
def _rate_limited(error: RateLimited) -> Response:
    if request.endpoint == "web.scanner.verify":
        return error_response(error)
    message = i18n.translate("err_too_many_attempts", minutes=max(1, math.ceil(error.retry_after / 60)))
    response = _sign_in_page(error.status, error=message)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


@scanner_pages.errorhandler(CodeserviceError)
def _json_error(error: CodeserviceError) -> Response:
    """``/scanner/verify`` answers in the API's one error shape (its 401 sends the page back to sign-in)."""
    return error_response(error)


@scanner_pages.get("")
def page() -> Response:
    """The sign-in form, or (signed in) the scene's choice and the scanning screen."""
    if request.cookies.get(scanner_sessions.cookie_name()) is None:
        return _sign_in_page()
    try:
        with scan_connection() as connection:
            directory = scan_directory()
            scanner = scanner_sessions.scanner(directory, directory.fresh(connection), connection)
    except ScannerKeyInvalid:
        response = _sign_in_page(notice=i18n.translate("scanner_ended"))
        scanner_sessions.end(response)
        return response
    registry = scene_registry()
    helps = registry.context_help()
    scenes = [
        {
            "name": name,
            "label": history_view.scene_name(name, i18n.current_language()),
            "help": helps.get(name, "").replace("`", ""),
            "built_in": name in BUILT_IN_CONTEXTS,
        }
        for name in scanner.scenes
        if name in registry
    ]
    return _page(
        "scanner.html",
        scanner=scanner,
        scenes=scenes,
        counts=_counts(scanner),
        session_csrf=scanner_sessions.csrf_token(),
        verify_url=url_for("web.scanner.verify"),
    )


@scanner_pages.post("/session")
def sign_in() -> Response:
    """The key, checked and exchanged for the scanner session; back to the page (303)."""
    key = request.form.get(KEY_FIELD, "").strip()
    response = redirect(url_for("web.scanner.page"), code=303)
    if not key or len(key) > MAX_KEY_LENGTH:
        return _sign_in_page(401, error=i18n.translate("scanner_bad_key"))
    try:
        with scan_connection() as connection:
            scanner_sessions.start(response, scan_directory(), connection, key)
    except ScannerKeyInvalid:
        return _sign_in_page(401, error=i18n.translate("scanner_bad_key"))
    return response


@scanner_pages.post("/logout")
def sign_out() -> Response:
    response = _sign_in_page(notice=i18n.translate("scanner_signed_out"))
    scanner_sessions.end(response)
    return response


@scanner_pages.post("/verify")
def verify() -> Response:
    """``POST /api/v1/verify``'s body and decision, plus the words for staff and the day's counts."""
    scanner, decision = verify_request(scanner_sessions.scanner)
    words = answer(decision, i18n.current_language())
    return jsonify(decision=decision.to_dict(), answer=words, counts=_counts(scanner))


def answer(decision: Decision, lang: str) -> dict[str, Any]:
    """What the screen says about ``decision``: the outcome, the reason in words, the scene's detail, the hint."""
    code = decision.code
    if decision.ok:
        words = i18n.translate("scanner_code_accepted", lang)
        scene_words = history_view.decision_text(decision.scene, code, True, decision.detail or {}, lang)
    else:
        key = f"scanner_code_{code}"
        words = i18n.translate(key, lang) if i18n.has(key) else i18n.translate("scanner_code_other", lang, code=code)
        scene_words = None
    fields = scene_registry().usage_fields(decision.scene) if decision.scene in scene_registry() else ()
    detail = declared_detail(fields, decision.detail or {})
    items = history_view.detail_items(detail, fields, lang, shown_direction=decision.ok and decision.scene == "transit")
    fare = detail.get("fare_cents")
    if type(fare) is int:
        items.append((i18n.translate("scanner_fare", lang), history_view.yuan(fare)))
    check_id = None
    if decision.ok and decision.check_id:
        hint = decision.check_id
        check_id = [
            (i18n.translate(label, lang), str(hint[member]))
            for member, label in (("n", "scanner_hint_name"), ("b", "scanner_hint_birthday"), ("i", "scanner_hint_id"))
            if isinstance(hint.get(member), str)
        ]
    return {
        "ok": decision.ok,
        "headline": i18n.translate("scanner_accepted" if decision.ok else "scanner_refused", lang),
        "words": words,
        "scene_words": scene_words,
        "detail": [{"label": label, "value": value} for label, value in items],
        "check_id": None if check_id is None else [{"label": label, "value": value} for label, value in check_id],
        "check_id_words": i18n.translate("scanner_check_id", lang) if check_id is not None else None,
    }

