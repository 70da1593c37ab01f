"""The OpenAPI 3.1 description of the JSON API (contract section 4), served at ``/openapi.json``.

Built from data: the error responses from the classes of
:mod:`codeservice.errors` (their status
and stable ``code``), the enums from the modules that enforce them, the
cookie name and code lifetime from the app's configuration.
``tests/test_openapi.py`` checks that every JSON route is described here
and nothing else; ``tests/test_error_shape.py`` that every
error a route sends is listed under its status.

The HTML pages (``/register``, ``/login``, ``/code``, ``/history``) are not
part of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask

from verifiers.errors import RULE_REJECTIONS
from verifiers.revocations import (
    REVOCATIONS_MEDIA_TYPE,
    REVOCATIONS_TYPE,
    REVOKED_CLAIM,
)
from verifiers.scenes import DetailField, SceneRegistry

from .extensions import SCENES
from .errors import (
    BadCredentials,
    BatchTooLarge,
    BodyTooLarge,
    CodeRevoked,
    CodeserviceError,
    DatabaseUnavailable,
    IdentityTaken,
    InvalidCursor,
    InvalidJson,
    InvalidLimit,
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
from .identity import (
    ID_TYPES,
    MAX_NAME_LENGTH,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
)
from .codes import REFRESH_MARGIN_SECONDS
from .issuance import CATEGORIES, TOKEN_TYPE
from .keystore import ALGORITHMS, JWK_SET_MEDIA_TYPE, JWKS_MAX_AGE_SECONDS
from .observability import READINESS_CHECKS
from .revocation import REVOCATIONS_MAX_AGE_SECONDS
from .usage import (
    DEFAULT_LIMIT,
    MAX_BATCH,
    MAX_LIMIT,
    RECORD_FIELDS,
)

__all__ = ["ERROR_RESPONSES", "FIELD_ERROR_CODES", "openapi_document"]

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
JSON = "application/json"
SESSION_SCHEME = "session"
SCANNER_SCHEME = "scanner"

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


def openapi_document(app: Flask) -> dict[str, Any]:
    """The whole document for this app (its cookie name and code lifetime)."""
    ttl = app.config["CODE_TTL"]
    cookie = app.config["SESSION_COOKIE_NAME"]
    errors = _error_components()
    scenes: SceneRegistry = app.extensions[SCENES]
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "codeservice",
            "version": API_VERSION,
            "summary": "Residents' live QR codes, and the keys that verify them offline.",
            "description": (
                "JSON over UTF-8. Every error is `{\"error\": {\"code\", \"message\"}}` (and `field` for "
                "an invalid field) with a 4xx status, or 503 when the database cannot be reached; `code` is "
                "stable, `message` is for people. "
                f"Any path not listed here answers 404 `{NotFound.code}`, a listed path with a method "
                f"it does not take 405 `{MethodNotAllowed.code}` (components/responses lists both)."
            ),
        },
        "paths": {
            "/.well-known/jwks.json": {"get": _jwks_operation(JWKS_MAX_AGE_SECONDS, JWK_SET_MEDIA_TYPE)},
            "/api/v1/residents": {"post": _register_operation()},
            "/api/v1/session": {"post": _login_operation(cookie), "delete": _logout_operation(cookie)},
            "/api/v1/code": {"get": _code_operation(ttl, REFRESH_MARGIN_SECONDS, app.config["ISSUED_SCOPES"])},
            "/api/v1/code.png": {"get": _code_png_operation()},
            "/api/v1/verify": {"post": _verify_operation()},
            "/api/v1/usage": {"post": _upload_usage_operation()},
            "/api/v1/me/usage": {"get": _my_usage_operation()},
            "/api/v1/revocations": {
                "get": _revocations_operation(
                    REVOCATIONS_MAX_AGE_SECONDS, REVOCATIONS_MEDIA_TYPE, REVOCATIONS_TYPE, REVOKED_CLAIM
                )
            },
            "/healthz": {"get": _healthz_operation()},
            "/readyz": {"get": _readyz_operation()},
            "/openapi.json": {"get": _openapi_operation()},
        },
        "components": {
            "schemas": {**_schemas(scenes), "Decision": _decision_schema(scenes)},
            "responses": errors,
            "headers": HEADERS,
            "parameters": {
                "IfNoneMatch": {
                    "name": "If-None-Match",
                    "in": "header",
                    "required": False,
                    "description": "Entity tags held (one, a list, or `*`); weak tags match too.",
                    "schema": {"type": "string"},
                }
            },
            "securitySchemes": {
                SESSION_SCHEME: {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": cookie,
                    "description": "Set by `POST /api/v1/session`, ended by `DELETE /api/v1/session`.",
                },
                SCANNER_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A scanner's key, from `flask --app codeservice scanners add`: it names the "
                        "scanner's venue, its device and the scenes it may verify."
                    ),
                },
            },
        },
    }


# -- helpers -------------------------------------------------------------------


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json_content(schema: dict[str, Any], media_type: str = JSON) -> dict[str, Any]:
    return {media_type: {"schema": schema}}


def _headers(**named: str) -> dict[str, Any]:
    """Response headers: HTTP name -> reference to components/headers."""
    return {name.replace("_", "-"): _ref("headers", component) for name, component in named.items()}


def _error_components() -> dict[str, Any]:
    return {name: _error_component(error) for name, error in ERROR_RESPONSES.items()}


def _error_component(error: ErrorResponse) -> dict[str, Any]:
    codes = ", ".join(f"`{code}`" for code in error.codes)
    component: dict[str, Any] = {
        "description": f"{error.description} Codes: {codes}.",
        "content": _json_content(
            {
                "allOf": [
                    _ref("schemas", "Error"),
                    {"properties": {"error": {"properties": {"code": {"enum": list(error.codes)}}}}},
                ]
            }
        ),
    }
    if error.headers:
        component["headers"] = {header: _ref("headers", header) for header in error.headers}
    return component


def _with_errors(responses: dict[str, Any], error_names: Iterable[str]) -> dict[str, Any]:
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
            merged[str(status)] = _ref("responses", names[status])
        else:
            merged[str(status)] = _error_component(
                ErrorResponse(
                    status,
                    " Or: ".join(error.description for error in errors),
                    tuple(code for error in errors for code in error.codes),
                    tuple(dict.fromkeys(header for error in errors for header in error.headers)),
                )
            )
    return dict(sorted(merged.items()))


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Any],
    *,
    errors: Iterable[str] = (),
    auth: str | None = None,
    request_schema: str | None = None,
    database: bool = False,
    description: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    # Anyone may call an operation without ``auth`` (an empty requirement).
    operation["security"] = [{auth: []}] if auth else [{}]
    if request_schema is not None:
        operation["requestBody"] = {"required": True, "content": _json_content(_ref("schemas", request_schema))}
        errors = (*JSON_BODY_ERRORS, *errors)
    if database:
        errors = (*errors, *DATABASE_ERRORS)
    operation["responses"] = _with_errors(responses, errors)
    return operation


# -- operations ----------------------------------------------------------------


def _conditional_get(
    operation_id: str,
    summary: str,
    tag: str,
    *,
    what: str,
    content: dict[str, Any],
    max_age: int,
    description: str,
    database: bool = False,
) -> dict[str, Any]:
    """A public GET with a strong ETag, ``If-None-Match`` and 304, cacheable for ``max_age`` seconds."""
    cache_headers = _headers(ETag="ETag", Cache_Control="CacheControlPublic")
    return _operation(
        operation_id,
        summary,
        tag,
        {
            "200": {"description": what, "headers": cache_headers, "content": content},
            "304": {
                "description": "Unchanged since the `If-None-Match` tag: keep using the copy held.",
                "headers": cache_headers,
            },
        },
        description=(
            f"{description} Cacheable for {max_age} s (`Cache-Control: public, max-age={max_age}`); "
            "send the `ETag` held in `If-None-Match` to get 304 while it is unchanged."
        ),
        parameters=[_ref("parameters", "IfNoneMatch")],
        database=database,
    )


def _jwks_operation(max_age: int, media_type: str) -> dict[str, Any]:
    return _conditional_get(
        "getJwks",
        "The public keys that verify codes (RFC 7517)",
        "keys",
        what="The key of the signing key and of every key whose codes may still be valid, newest first.",
        content=_json_content(_ref("schemas", "JWKS"), media_type),
        max_age=max_age,
        description="After a key rotation the set holds both keys until codes the old key signed have expired.",
    )


def _revocations_operation(max_age: int, media_type: str, typ: str, claim: str) -> dict[str, Any]:
    return _conditional_get(
        "getRevocations",
        "The revoked residents' code ids, signed",
        "keys",
        what=(
            f"A compact JWS (header `typ` `{typ}`, never `{TOKEN_TYPE}`; signed by the issuer's current key, "
            f"verified with the JWKS) whose claims are `iss`, `iat` and `{claim}`: the revoked `sub`s, sorted."
        ),
        content={media_type: {"schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){2}$"}}},
        max_age=max_age,
        description="Scanners refuse the codes of these residents offline (decision `revoked`).",
        database=True,
    )


def _register_operation() -> dict[str, Any]:
    return _operation(
        "registerResident",
        "Register a resident",
        "residents",
        {
            "201": {
                "description": "Registered. This does not log in: log in with the phone and password.",
                "content": _json_content(_resident_envelope()),
            }
        },
        errors=("Taken", "InvalidField", "RateLimited"),
        request_schema="Registration",
        database=True,
    )


def _login_operation(cookie: str) -> dict[str, Any]:
    return _operation(
        "logIn",
        "Log in with phone and password",
        "session",
        {
            "200": {
                "description": f"Logged in: the `{cookie}` cookie is set.",
                "headers": _headers(Set_Cookie="SetSessionCookie", Cache_Control="CacheControlNoStore"),
                "content": _json_content(_resident_envelope()),
            }
        },
        # One 429 for both: the per-phone cool-down and the per-address rate limit.
        errors=("BadCredentials", "TooManyAttempts", "RateLimited"),
        request_schema="Login",
        database=True,
        description=(
            "A successful login also sets a device cookie (`codeservice_device`, `__Host-codeservice_device` "
            "when cookies are Secure; HttpOnly, SameSite=Strict, a year). A login that sends a valid one for "
            "its phone is judged by that cookie's own failed attempts alone, so no one else's wrong passwords "
            "lock this client out; any other login meets the phone's cool-down (`too_many_attempts`)."
        ),
    )


def _logout_operation(cookie: str) -> dict[str, Any]:
    operation = _operation(
        "logOut",
        "Log out",
        "session",
        {
            "204": {
                "description": (
                    f"Logged out, even without a session. The `{cookie}` cookie is cleared and every "
                    "other copy of it stops working."
                ),
            }
        },
        database=True,  # with a session: it reads and updates the resident
    )
    # With or without a session: the cookie is used when present.
    operation["security"] = [{SESSION_SCHEME: []}, {}]
    return operation


def _code_operation(ttl: int, refresh_margin: int, scopes: Iterable[str]) -> dict[str, Any]:
    return _operation(
        "getCode",
        "A fresh code for the logged-in resident",
        "codes",
        {
            "200": {
                "description": (
                    f"A new code each call, valid for {ttl} s, for the scenes {', '.join(scopes)}. "
                    f"Fetch the next one at `refresh_after` (at most {refresh_margin} s before `expires_at`)."
                ),
                "headers": _headers(Cache_Control="CacheControlNoStore"),
                "content": _json_content(_ref("schemas", "Code")),
            }
        },
        errors=("NotAuthenticated", "CodeRevoked", "RateLimited"),
        auth=SESSION_SCHEME,
        database=True,
    )


def _code_png_operation() -> dict[str, Any]:
    return _operation(
        "getCodePng",
        "A fresh code as a QR code image",
        "codes",
        {
            "200": {
                "description": "The QR code (level M, 4-module quiet zone) whose text is a new code's token.",
                "headers": _headers(Cache_Control="CacheControlNoStore"),
                "content": {"image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}}},
            }
        },
        errors=("NotAuthenticated", "CodeRevoked", "RateLimited"),
        auth=SESSION_SCHEME,
        database=True,
    )


def _verify_operation() -> dict[str, Any]:
    return _operation(
        "verifyCode",
        "Verify a code at a scene (a scanner, online)",
        "scanners",
        {
            "200": {
                "description": (
                    "The decision, whatever the token holds: `ok` false and the reason's `code` for a "
                    "refused code. The usage is logged with the scanner's venue and device."
                ),
                "content": _json_content(_ref("schemas", "Decision")),
            }
        },
        errors=("ScannerKeyInvalid", "SceneNotPermitted", "RateLimited"),
        auth=SCANNER_SCHEME,
        request_schema="VerifyRequest",
        database=True,
        description=(
            "The key is checked first, then the body: `token` and `scene` are required strings, "
            "`context` an optional object (what the scene needs from the scanner)."
        ),
    )


def _upload_usage_operation() -> dict[str, Any]:
    return _operation(
        "uploadUsage",
        "Upload usage records taken offline (a scanner)",
        "scanners",
        {
            "200": {
                "description": (
                    "Stored. Idempotent by record `id`: a record stored before (by any scanner) is a "
                    "duplicate and left as it was, so re-sending a batch is how a scanner retries."
                ),
                "content": _json_content(
                    _object(
                        {
                            "accepted": {"type": "integer", "minimum": 0, "description": "Records stored now."},
                            "duplicates": {"type": "integer", "minimum": 0, "description": "Records already held."},
                        }
                    )
                ),
            }
        },
        errors=("BadUsageBatch", "ScannerKeyInvalid"),
        auth=SCANNER_SCHEME,
        request_schema="UsageBatch",
        database=True,
        description="A record is attributed to the uploading key's venue and device, whatever it says.",
    )


def _my_usage_operation() -> dict[str, Any]:
    return _operation(
        "getMyUsage",
        "The resident's own usage history, newest first",
        "residents",
        {
            "200": {
                "description": "One page of records; `next` is the cursor of the page after, null at the end.",
                "headers": _headers(Cache_Control="CacheControlNoStore"),
                "content": _json_content(
                    _object(
                        {
                            "records": {"type": "array", "items": _ref("schemas", "UsageRecord")},
                            "next": {"type": ["string", "null"], "description": "Send as `before` for more."},
                        }
                    )
                ),
            }
        },
        errors=("BadHistoryQuery", "NotAuthenticated"),
        auth=SESSION_SCHEME,
        database=True,
        parameters=[
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": "Records per page.",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            },
            {
                "name": "before",
                "in": "query",
                "required": False,
                "description": "A `next` cursor from a previous page.",
                "schema": {"type": "string"},
            },
        ],
    )


def _healthz_operation() -> dict[str, Any]:
    return _operation(
        "getHealth",
        "Liveness",
        "service",
        {
            "200": {
                "description": "The service is up.",
                "content": _json_content(
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"const": "ok"}},
                    }
                ),
            }
        },
    )


def _readyz_operation() -> dict[str, Any]:
    # The checks codeservice.observability.readiness makes, in both answers.
    checks = {
        "type": "object",
        "required": list(READINESS_CHECKS),
        "properties": {name: {"enum": ["ok", "failed"]} for name in READINESS_CHECKS},
        "additionalProperties": False,
    }
    return _operation(
        "getReadiness",
        "Readiness",
        "service",
        {
            "200": {
                "description": "The database answers and the signing key loads: send traffic.",
                "content": _json_content(
                    {
                        "type": "object",
                        "required": ["status", "checks"],
                        "properties": {"status": {"const": "ready"}, "checks": checks},
                    }
                ),
            },
            "503": {
                "description": "A check failed (`checks` says which): send no traffic. Code: `not_ready`.",
                "content": _json_content(
                    {
                        "type": "object",
                        "required": ["error", "checks"],
                        "properties": {
                            # The one error shape, with the checks beside it.
                            "error": {
                                "allOf": [
                                    {"$ref": "#/components/schemas/Error/properties/error"},
                                    {"properties": {"code": {"const": "not_ready"}}},
                                ]
                            },
                            "checks": checks,
                        },
                        "additionalProperties": False,
                    }
                ),
            },
        },
        description="Unlike `/healthz` (liveness, no dependencies), it checks the database and the signing key.",
    )


def _openapi_operation() -> dict[str, Any]:
    return _operation(
        "getOpenApi",
        "This document",
        "service",
        {
            "200": {
                "description": "The OpenAPI 3.1 description of the JSON API.",
                "content": _json_content({"type": "object"}),
            }
        },
    )


def _resident_envelope() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["resident"],
        "properties": {"resident": _ref("schemas", "Resident")},
    }


# -- schemas -------------------------------------------------------------------


def _string(description: str, **keywords: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **keywords}


def _object(properties: dict[str, Any], *, optional: Iterable[str] = (), **keywords: Any) -> dict[str, Any]:
    """A closed object; every property required except ``optional``."""
    optional = set(optional)
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
        **keywords,
    }


def _schemas(scenes: SceneRegistry) -> dict[str, Any]:
    base64url = "^[A-Za-z0-9_-]+$"
    epoch_seconds = {"type": "integer", "description": "Seconds since the epoch."}
    return {
        "Registration": {
            **_object(
                {
                    "name": _string(
                        f"The full name: 1 to {MAX_NAME_LENGTH} characters once spaces are trimmed (`invalid_name`).",
                        minLength=1,
                    ),
                    "id_type": _string("The identity document's kind (`invalid_id_type`).", enum=list(ID_TYPES)),
                    "id_number": _string(
                        "The document's number; a `resident_id` is 18 characters with a GB 11643 "
                        "check character (`invalid_id_number`)."
                    ),
                    "phone": _string(
                        "A mainland mobile number, 11 digits from 13 to 19; spaces, hyphens and "
                        "+86 are accepted (`invalid_phone`)."
                    ),
                    "password": _string(
                        f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters, not a plain run, "
                        "not containing the phone or ID number (`weak_password`).",
                        minLength=MIN_PASSWORD_LENGTH,
                        maxLength=MAX_PASSWORD_LENGTH,
                    ),
                }
            ),
            # Members beyond these are ignored.
            "additionalProperties": True,
        },
        "Login": {
            **_object({"phone": _string("The phone number registered."), "password": _string("The password.")}),
            "additionalProperties": True,
        },
        "Resident": _object(
            {
                "name_masked": _string("The name with its middle masked, e.g. `张*明`."),
                "category": {
                    "description": "The concession category codes carry now, if any.",
                    "enum": [*CATEGORIES, None],
                },
                "id_type": _string("The identity document's kind.", enum=list(ID_TYPES)),
            },
            description="What the API shows of a resident, to that resident: never the ID number or phone.",
        ),
        "Code": _object(
            {
                "token": _string(
                    f"The code: a compact JWS (`typ` `{TOKEN_TYPE}`); the QR code's text is exactly this.",
                    pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
                ),
                "expires_at": {**epoch_seconds, "description": "The code's `exp`, seconds since the epoch."},
                "refresh_after": {
                    **epoch_seconds,
                    "description": "When to fetch the next code, before `expires_at`; seconds since the epoch.",
                },
                "qr_svg": _string(
                    "The QR code as an SVG element to inline (a `viewBox`, no width or height).",
                    contentMediaType="image/svg+xml",
                ),
            }
        ),
        "VerifyRequest": {
            **_object(
                {
                    "token": _string("The code as scanned: any string (a malformed one is a decision)."),
                    "scene": _string("The scene the scanner verifies at; its key must name it."),
                    "context": {"type": ["object", "null"], "description": _context_description(scenes)},
                },
                optional=("context",),
            ),
            "additionalProperties": True,
        },
        "UsageRecord": _usage_record_schema(scenes),
        "UsageBatch": {
            **_object(
                {
                    "records": {
                        "type": "array",
                        "maxItems": MAX_BATCH,
                        "items": _ref("schemas", "UsageRecord"),
                    }
                }
            ),
            "additionalProperties": True,
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": _object(
                    {
                        "code": _string("Stable and machine-readable."),
                        "message": _string("For people; never repeats the rejected value."),
                        "field": _string("The request field at fault, when the error is about one."),
                    },
                    optional=("field",),
                )
            },
            "additionalProperties": False,
        },
        "JWKS": _object(
            {"keys": {"type": "array", "items": _ref("schemas", "JWK")}},
            description="A JWK Set (RFC 7517 section 5).",
        ),
        "JWK": _object(
            {
                "kty": _string("`OKP` (Ed25519) or `EC` (P-256).", enum=["OKP", "EC"]),
                "crv": _string("The curve.", enum=["Ed25519", "P-256"]),
                "x": _string("The public key (OKP) or its x coordinate (EC), base64url.", pattern=base64url),
                "y": _string("The y coordinate (EC only), base64url.", pattern=base64url),
                "kid": _string(
                    "The first 8 bytes of the RFC 7638 thumbprint, base64url.", pattern="^[A-Za-z0-9_-]{11}$"
                ),
                "alg": _string("The signing algorithm.", enum=list(ALGORITHMS)),
                "use": {"const": "sig"},
            },
            optional=("y",),
        ),
    }


def _usage_record_schema(scenes: SceneRegistry) -> dict[str, Any]:
    """A usage record (contract section 5): one per decision, online or offline."""
    nullable_id = {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_-]{1,64}$"}
    properties: dict[str, Any] = {
        "id": _string("A UUID: the record's idempotency key.", format="uuid"),
        "scene": {"type": ["string", "null"], "description": "The scene, one the scanner's key names."},
        "venue_id": {"type": ["string", "null"], "description": "The scanner's venue."},
        "device_id": {"type": ["string", "null"], "description": "The scanner's device."},
        "sub": {**nullable_id, "description": "The resident's code id, once the code's signature was good."},
        "jti": {**nullable_id, "description": "The code's id, once the code's signature was good."},
        "decided_at": _string("When the scanner decided: RFC 3339 with a zone.", format="date-time"),
        "ok": {"type": "boolean", "description": "True exactly when `code` is `accepted`."},
        "code": _string("The decision's code.", pattern="^[a-z][a-z0-9_]{0,31}$"),
        "detail": {"type": "object", "description": _detail_description(scenes)},
    }
    assert tuple(properties) == RECORD_FIELDS, "the schema follows codeservice.usage"
    return _object(properties, description="A usage record (contract section 5).")


def _detail_description(scenes: SceneRegistry) -> str:
    """The members each installed scene declares for its usage detail (``Scene.usage_fields``)."""
    declared = "".join(
        f"\n- `{name}`: " + (", ".join(_field_text(field) for field in scenes.usage_fields(name)) or "none")
        for name in scenes.names()
    )
    return (
        "The scene's usage detail: only the members its scene declares, each absent or as declared "
        f"(contract section 3); by installed scene:\n{declared}\n\nA null scene, or one that declares "
        "none, has `{}`. An uploaded `venue_id` is the uploading scanner's venue. A resident's history "
        "holds only declared members."
    )


def _field_text(field: DetailField) -> str:
    if field.choices is not None:
        kind = " or ".join(f"`{choice}`" for choice in field.choices)
    elif field.kind == "integer":
        kind = f"an integer{field.bounds()}"
    else:
        kind = f"text of at most {field.max_length} characters"
    return f"`{field.name}` ({kind}{', or null' if field.nullable else ''})"


def _context_description(scenes: SceneRegistry) -> str:
    """What each installed scene wants in the context, in the scenes' own words (``Scene.context_help``)."""
    wanted = "".join(
        f"\n- `{name}`: {help_text or 'see the scene'}" for name, help_text in scenes.context_help().items()
    )
    return (
        f"What the scene needs, by installed scene:\n{wanted}\n\nA context that lacks what its scene needs, "
        "or holds the wrong types, is a `bad_context` decision, not an error."
    )


def _decision_schema(scenes: SceneRegistry) -> dict[str, Any]:
    """A decision (contract section 2); its codes from the verifier's rules and the installed scenes."""
    rules = [rejection.code for rejection in RULE_REJECTIONS]
    by_scene = {name: scenes.rejection_codes(name) for name in scenes.names()}
    scene_codes = "; ".join(f"{name}: {', '.join(codes) or 'none'}" for name, codes in by_scene.items())
    nullable_string = {"type": ["string", "null"]}
    return _object(
        {
            "ok": {"type": "boolean", "description": "True only for `accepted`."},
            "code": _string(
                f"`accepted`, or the first rule that failed: {', '.join(rules)}; "
                f"or a scene's own (installed scenes: {scene_codes})."
            ),
            "scene": {**nullable_string, "description": "The scene, or null for an unknown one."},
            "sub": {**nullable_string, "description": "The resident's code id, once the signature is good."},
            "jti": {**nullable_string, "description": "The code's id, once the signature is good."},
            "exp": {"type": ["integer", "null"], "description": "The code's expiry, seconds since the epoch."},
            "detail": {"type": "object", "description": "The scene's usage detail."},
            "message": _string("For people."),
        },
        description="A verification decision (contract section 2).",
    )
