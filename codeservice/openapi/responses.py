"""The error responses the document lists (``components/responses``), and the headers they name.

Built from the classes of :mod:`codeservice.errors`: each response's status
and its stable ``code``s. ``tests/test_error_shape.py`` checks that every
error a route sends is listed under its status.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import (
    BadCredentials,
    BatchTooLarge,
    BodyTooLarge,
    CodeRevoked,
    CodeserviceError,
    DatabaseUnavailable,
    DeviceNotFound,
    IdentityTaken,
    InvalidCursor,
    InvalidJson,
    InvalidLimit,
    InvalidPublicKey,
    InvalidUsageRecord,
    MethodNotAllowed,
    MissingField,
    NotAuthenticated,
    NotFound,
    PhoneTaken,
    RateLimited,
    ScannerKeyInvalid,
    SceneNotPermitted,
    TooManyAttempts,
    UnsupportedMediaType,
    WrongFieldType,
)
from ..usage import MAX_BATCH, MAX_LIMIT
from .schemas import json_content, ref

# The ``code`` of each InvalidField that codeservice.identity raises for a
# registration (its docstring explains each rule).
FIELD_ERROR_CODES = ("invalid_name", "invalid_id_type", "invalid_id_number", "invalid_phone", "weak_password")


@dataclass(frozen=True)
class ErrorResponse:
    """One documented error response: its status, when it happens, its codes, its headers."""

    status: int
    description: str
    codes: tuple[str, ...]
    headers: tuple[str, ...] = ()


def _codes(*errors: type[CodeserviceError]) -> tuple[str, ...]:
    return tuple(error.code for error in errors)


# Keyed by their name under components/responses.
ERROR_RESPONSES: dict[str, ErrorResponse] = {
    "BadJsonBody": ErrorResponse(
        400,
        "The body is not strict JSON: one object, in UTF-8 without a byte order mark, with no member name "
        "repeated in any object, no `NaN` or `Infinity` and no lone surrogate (`\\ud800`); or a field is "
        "missing (or null) or of the wrong JSON type.",
        _codes(InvalidJson, MissingField, WrongFieldType),
    ),
    "BadUsageBatch": ErrorResponse(
        400,
        f"More than {MAX_BATCH} records, or a record that will not do (`field` names it, as "
        "`records[3].decided_at`, or `records[3].detail.station` for a detail member its scene does not "
        "declare or holds otherwise): nothing of the batch is stored.",
        _codes(BatchTooLarge, InvalidUsageRecord),
    ),
    "BadHistoryQuery": ErrorResponse(
        400,
        f"`limit` is not an integer from 1 to {MAX_LIMIT}, or `before` is not a cursor the service sent as `next`.",
        _codes(InvalidLimit, InvalidCursor),
    ),
    "InvalidPublicKey": ErrorResponse(
        400,
        "`public_key` is not a P-256 public key as a JWK: another key type or curve, a private member (`d`), "
        "`x` or `y` not 32 bytes of base64url, or a point not on the curve; the message says which.",
        _codes(InvalidPublicKey),
    ),
    "NotAuthenticated": ErrorResponse(401, "No valid session cookie: log in first.", _codes(NotAuthenticated)),
    "BadCredentials": ErrorResponse(
        401,
        "The phone number or the password is wrong (the same answer for an unknown phone).",
        _codes(BadCredentials),
    ),
    "ScannerKeyInvalid": ErrorResponse(
        401,
        "No `Authorization: Bearer` scanner key, or one that is unknown or revoked.",
        _codes(ScannerKeyInvalid),
    ),
    "CodeRevoked": ErrorResponse(403, "Codes are no longer issued for this resident.", _codes(CodeRevoked)),
    "SceneNotPermitted": ErrorResponse(
        403, "The scanner's key does not name this scene.", _codes(SceneNotPermitted)
    ),
    "NotFound": ErrorResponse(404, "No such resource: any path this document does not list.", _codes(NotFound)),
    "DeviceNotFound": ErrorResponse(
        404,
        "No active device of the logged-in resident has this id: unknown, withdrawn or another resident's.",
        _codes(DeviceNotFound),
    ),
    "MethodNotAllowed": ErrorResponse(
        405,
        "The path exists but not with this method; `Allow` lists the methods it takes.",
        _codes(MethodNotAllowed),
        headers=("Allow",),
    ),
    "Taken": ErrorResponse(
        409,
        "An account already exists for this identity document (`identity_taken`) "
        "or this phone number (`phone_taken`).",
        _codes(IdentityTaken, PhoneTaken),
    ),
    "BodyTooLarge": ErrorResponse(413, "The body is larger than 1 MiB.", _codes(BodyTooLarge)),
    "UnsupportedMediaType": ErrorResponse(
        415,
        "The body is not sent as `Content-Type: application/json` (without a charset, or with `charset=utf-8`).",
        _codes(UnsupportedMediaType),
    ),
    "InvalidField": ErrorResponse(
        422,
        "A field has the right JSON type but a value that will not do; `field` names it. "
        "Fields are checked in the order name, id_type, id_number, phone, password.",
        FIELD_ERROR_CODES,
    ),
    "TooManyAttempts": ErrorResponse(
        429,
        "Too many failed logins in a row from clients without this phone's device cookie, or from this "
        "one device cookie: every attempt they count against is refused, even with the right password, "
        "until the cool-down is over; `Retry-After` gives its remaining seconds.",
        _codes(TooManyAttempts),
        headers=("Retry-After",),
    ),
    "RateLimited": ErrorResponse(
        429,
        "Over the rate limit of this operation's budget (per client address; per logged-in resident for "
        "codes, per scanner key for verify; set by `CODESERVICE_RATE_LIMIT_*`): every request is refused "
        "until the window ends; `Retry-After` gives its remaining seconds.",
        _codes(RateLimited),
        headers=("Retry-After",),
    ),
    "DatabaseUnavailable": ErrorResponse(
        503,
        "The database cannot be reached for the moment (a restart, a lost connection): retry after "
        "`Retry-After` seconds. The request was rolled back or, if the connection died during its "
        "commit, committed whole, which a retry then meets (a registration's 409, a verification's `replayed`).",
        _codes(DatabaseUnavailable),
        headers=("Retry-After",),
    ),
}
JSON_BODY_ERRORS = ("BadJsonBody", "BodyTooLarge", "UnsupportedMediaType")
# An operation that reads or writes the database, when it cannot be reached.
DATABASE_ERRORS = ("DatabaseUnavailable",)
# Not tied to one operation: any path, any method.
GENERAL_ERRORS = ("NotFound", "MethodNotAllowed")

HEADERS: dict[str, dict[str, Any]] = {
    "Allow": {"description": "The methods the path takes.", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds until a new attempt can succeed.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "ETag": {
        "description": "A strong entity tag of the body; send it back in `If-None-Match`.",
        "schema": {"type": "string", "pattern": '^"[0-9a-f]+"$'},
    },
    "CacheControlPublic": {
        "description": "How long a copy may be used without asking again.",
        "schema": {"type": "string", "pattern": "^public, max-age=[0-9]+$"},
    },
    "CacheControlNoStore": {
        "description": "`no-store`: a code or a session is never cached.",
        "schema": {"type": "string", "const": "no-store"},
    },
    "SetSessionCookie": {
        "description": (
            "The session cookie (HttpOnly, SameSite=Lax; in production Secure, Path=/ and named with the "
            "`__Host-` prefix). It lasts 30 days from its last use, and never longer than 30 days from the login."
        ),
        "schema": {"type": "string"},
    },
}


def error_components() -> dict[str, Any]:
    return {name: error_component(error) for name, error in ERROR_RESPONSES.items()}


def error_component(error: ErrorResponse) -> dict[str, Any]:
    codes = ", ".join(f"`{code}`" for code in error.codes)
    component: dict[str, Any] = {
        "description": f"{error.description} Codes: {codes}.",
        "content": json_content(
            {
                "allOf": [
                    ref("schemas", "Error"),
                    {"properties": {"error": {"properties": {"code": {"enum": list(error.codes)}}}}},
                ]
            }
        ),
    }
    if error.headers:
        component["headers"] = {header: ref("headers", header) for header in error.headers}
    return component


def with_errors(responses: dict[str, Any], error_names: Iterable[str]) -> dict[str, Any]:
    """``responses`` plus the named error responses under their status.

    One error response for a status is a reference to it; several (a JSON
    body's 400 and an operation's own 400) become one response listing them all.
    """
    by_status: dict[int, list[ErrorResponse]] = {}
    names: dict[int, str] = {}
    for name in error_names:
        error = ERROR_RESPONSES[name]
        by_status.setdefault(error.status, []).append(error)
        names[error.status] = name
    merged = dict(responses)
    for status, errors in by_status.items():
        if str(status) in merged:
            raise ValueError(f"status {status} is both a success and an error response")
        if len(errors) == 1:
            merged[str(status)] = ref("responses", names[status])
        else:
            merged[str(status)] = error_component(
                ErrorResponse(
                    status,
                    " Or: ".join(error.description for error in errors),
                    tuple(code for error in errors for code in error.codes),
                    tuple(dict.fromkeys(header for error in errors for header in error.headers)),
                )
            )
    return dict(sorted(merged.items()))
