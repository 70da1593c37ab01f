"""The JSON side of HTTP: one error shape for every JSON route, and the strict JSON request body.

Every error under ``/api/`` (and on the other JSON routes: ``JSON_PREFIXES``)
is ``{"error": {"code": "...", "message": "..."}}`` with a 4xx status: client
input never produces HTML or a 5xx. :func:`init_app` registers the one set of
error handlers that renders every :class:`~codeservice.errors.CodeserviceError`
so; the blueprints only route.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from verifiers.jose import JoseFormatError, json_object
from verifiers.shapes import JSON_TYPES, Member

from . import db
from .errors import (
    BodyTooLarge,
    ClientError,
    CodeserviceError,
    DatabaseUnavailable,
    InvalidJson,
    MethodNotAllowed,
    MissingField,
    NotFound,
    UnsupportedMediaType,
    WrongFieldType,
)

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/.well-known/", "/healthz", "/readyz", "/openapi.json")

_HTTP_ERRORS: dict[int, type[ClientError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: BodyTooLarge,
    415: UnsupportedMediaType,
}


def error_response(error: CodeserviceError) -> Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    field = getattr(error, "field", None)
    if field:
        body["field"] = field
    response = jsonify(error=body)
    response.status_code = error.status
    if error.retry_after:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES)


def _handle_codeservice_error(error: CodeserviceError) -> Response:
    if error.status >= 500:
        log.error("server error %s: %s", error.code, error.message)
    return error_response(error)


def _handle_http_exception(error: HTTPException) -> Any:
    if not wants_json():
        return error
    client_error = _HTTP_ERRORS.get(error.code or 400, ClientError)
    response = error_response(client_error())
    # A 405 names the methods the path takes (RFC 9110 section 15.5.6).
    allow = dict(error.get_headers()).get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


def _handle_unexpected(error: Exception) -> Any:
    if db.is_connection_error(error):
        # The database went away (a restart, a dropped connection): the
        # request's transaction is rolled back (or, if the connection died
        # during COMMIT, committed whole; a retry then sees a replay). Tell
        # the client to retry instead of answering 500.
        log.warning("database unavailable on %s %s: %s", request.method, request.path, error)
        db.discard_session()
        return error_response(DatabaseUnavailable())
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(CodeserviceError())


def _options_without_content(response: Response) -> Response:
    """Flask answers OPTIONS itself, as an empty ``text/html`` 200; make it what it is: 204 with ``Allow``."""
    if request.method == "OPTIONS" and response.status_code == 200 and not response.get_data():
        response.status_code = 204
        del response.headers["Content-Type"]
    return response


def init_app(app: Flask) -> None:
    """The error handlers of every route, and OPTIONS answered as 204 (before the blueprints)."""
    app.register_error_handler(CodeserviceError, _handle_codeservice_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
    app.after_request(_options_without_content)


def json_body(members: Sequence[Member]) -> dict[str, Any]:
    """The request's JSON object, holding the declared ``members`` as declared.

    415 without a JSON content type, or with a charset other than UTF-8; 400
    for a body that is not a JSON object, a required member missing (or
    null), or a member of the wrong JSON type. The body is read as the
    verifier reads a code's JSON (:func:`verifiers.jose.json_object`), once:
    UTF-8 without a byte order mark, no repeated member name at any depth, no
    NaN or Infinity, no lone surrogate. What the service takes, a proxy in
    front reads the same way. Members beyond those declared are left as they are.
    """
    if not request.is_json or request.mimetype_params.get("charset", "utf-8").lower() != "utf-8":
        raise UnsupportedMediaType()
    try:
        body = json_object(request.get_data(cache=True))
    except JoseFormatError as exc:
        raise InvalidJson(f"the body is not a strict UTF-8 JSON object: {exc}") from None
    for member in members:
        name = member.name
        value = body.get(name)
        if value is None:
            if member.required:
                raise MissingField(f"the field {name!r} is required")
            continue
        if not any(_is_json_type(value, kind) for kind in member.json_types):
            raise WrongFieldType(f"the field {name!r} must be {_json_type(member.json_types)}")
    return body


def _is_json_type(value: Any, kind: str) -> bool:
    expected = JSON_TYPES[kind]
    if isinstance(value, bool):  # a JSON true or false is a boolean, never a number
        return expected is bool
    return isinstance(value, (int, float) if kind == "number" else expected)


def _json_type(kinds: Sequence[str]) -> str:
    """``a string``, ``an object``, ``an integer or a string``."""
    return " or ".join(f"an {kind}" if kind[0] in "aeiou" else f"a {kind}" for kind in kinds) or "a value"
