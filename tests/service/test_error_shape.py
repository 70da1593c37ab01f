"""One error shape on every JSON route: ``{"error": {"code", "message"}}``, a 4xx, a documented code.

Whatever the request (a wrong method, an unknown path, a body that is not
JSON, too large, malformed or of the wrong types, no session), the answer is
JSON with a 4xx status and a ``code`` the OpenAPI document lists for that
operation and status: never HTML, never a 5xx. The routes come from the app's
URL map, so a new route is covered as soon as it exists.
"""

from __future__ import annotations

import json
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from helpers import (
    ALL_SCENES,
    DEMO_PASSWORD,
    PROVOKED_BY_CONFIGURATION,
    documented_operations,
    error_codes,
    gb11643_id,
    json_routes,
    new_keys_dir,
    registration,
    resolve,
    validate,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from codeservice import MAX_BODY_BYTES, create_app, db, scanners
from codeservice.context import data_keys, key_store
from codeservice.issuance import issue_code, new_code_id
from codeservice.openapi import ERROR_RESPONSES, GENERAL_ERRORS, openapi_document
from codeservice.residents import find_by_phone
from verifiers.jose import b64url_encode

TRIED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
UNKNOWN_PATHS = (
    "/api/v1/nope",
    "/api/v1/",
    "/api/v2/code",
    "/api/v1/code/extra",
    "/api/v1/residents/1",
    "/api/v1/code.svg",
    "/.well-known/nope",
)


def documented_codes(document: dict[str, Any], path: str, method: str, status: int) -> set[str]:
    """The codes the document lists for this operation and status, or for any path (404, 405)."""
    operation = document["paths"].get(path, {}).get(method.lower())
    if operation is not None and str(status) in operation["responses"]:
        return error_codes(document, operation["responses"][str(status)])
    general = document["components"]["responses"]
    return {
        code
        for name in GENERAL_ERRORS
        if ERROR_RESPONSES[name].status == status
        for code in error_codes(document, general[name])
    }


def error_problem(document: dict[str, Any], path: str, method: str, response: Any) -> str | None:
    """What is wrong with ``response`` as an error of this operation, or None."""
    where = f"{method} {path} -> {response.status_code}"
    if not 400 <= response.status_code < 500:
        return f"{where}: not a 4xx"
    if response.mimetype != "application/json":
        return f"{where}: {response.mimetype}, not JSON"
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return f"{where}: {response.data[:200]!r} is not the error shape"
    error = body["error"]
    if not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
        return f"{where}: code and message must be strings: {error}"
    if not set(error) <= {"code", "message", "field"}:
        return f"{where}: unexpected members in {error}"
    codes = documented_codes(document, path, method, response.status_code)
    if error["code"] not in codes:
        return f"{where}: {error['code']!r} is not documented for it (documented: {sorted(codes)})"
    return None


def assert_error(document: dict[str, Any], path: str, method: str, response: Any, status: int, code: str) -> None:
    problem = error_problem(document, path, method, response)
    assert problem is None, problem
    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code), f"{method} {path}"


@pytest.fixture
def document(app: Flask) -> dict[str, Any]:
    return openapi_document(app)


def scanner_key(app: Flask, scenes: list[str] = ALL_SCENES) -> str:
    with app.app_context():
        _scanner, key = scanners.add_scanner(
            db.session(),
            venue_id="museum-1",
            device_id="gate-1",
            scenes=scenes,
            installed=ALL_SCENES,
            now=datetime.now(UTC),
        )
    return key


def credentials(app: Flask, client: Any, document: dict[str, Any], path: str, method: str) -> dict[str, str]:
    """What satisfies the operation's security: headers to send (a session goes into ``client``)."""
    security = document["paths"][path][method.lower()]["security"]
    if {} in security:
        return {}
    (requirement,) = security
    (scheme,) = requirement
    if scheme == "scanner":
        return {"Authorization": f"Bearer {scanner_key(app)}"}
    assert scheme == "session", scheme
    body = registration()
    assert client.post("/api/v1/residents", json=body).status_code == 201
    login = {"phone": body["phone"], "password": body["password"]}
    assert client.post("/api/v1/session", json=login).status_code == 200
    return {}


# -- any route -----------------------------------------------------------------------


def test_a_wrong_method_is_405(app: Flask, client: Any, document: dict[str, Any]) -> None:
    routes = json_routes(app)
    problems, tried = [], 0
    for path in sorted({path for path, _method in routes}):
        allowed = {method for route_path, method in routes if route_path == path}
        for method in sorted(set(TRIED_METHODS) - allowed):
            response = client.open(path, method=method)
            tried += 1
            problem = error_problem(document, path, method, response)
            if problem is None and response.status_code != 405:
                problem = f"{method} {path}: {response.status_code}, not 405"
            if problem is None and not allowed <= set(response.headers.get("Allow", "").split(", ")):
                problem = f"{method} {path}: Allow {response.headers.get('Allow')!r} lacks {sorted(allowed)}"
            if problem:
                problems.append(problem)
    assert tried > 20
    assert problems == []


def test_options_is_no_content_with_the_methods_allowed(app: Flask, client: Any) -> None:
    routes = json_routes(app)
    for path in sorted({path for path, _method in routes}):
        response = client.open(path, method="OPTIONS")
        allowed = {method for route_path, method in routes if route_path == path}
        assert response.status_code == 204, path
        assert response.data == b"" and "Content-Type" not in response.headers, path
        assert allowed <= set(response.headers["Allow"].split(", ")), path


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_an_unknown_path_is_404(client: Any, document: dict[str, Any], path: str, method: str) -> None:
    response = client.open(path, method=method, json={"token": "x"})
    assert_error(document, path, method, response, 404, "not_found")


# -- routes that take a JSON body ------------------------------------------------------------

TOO_LARGE = b"[" + b" " * MAX_BODY_BYTES + b"]"
# (name, request keywords, status, code): whatever the route, when it reads a JSON body.
BAD_BODIES: list[tuple[str, dict[str, Any], int, str]] = [
    ("text/plain", {"data": "{}", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ("no content type", {"data": "{}"}, 415, "unsupported_media_type"),
    ("a form", {"data": {"phone": "13800138000"}}, 415, "unsupported_media_type"),
    ("truncated JSON", {"data": "{", "content_type": "application/json"}, 400, "invalid_json"),
    ("an array", {"json": []}, 400, "invalid_json"),
    ("a string", {"json": "phone"}, 400, "invalid_json"),
    ("null", {"data": "null", "content_type": "application/json"}, 400, "invalid_json"),
    ("not UTF-8", {"data": b'{"phone": "\xff\xfe"}', "content_type": "application/json"}, 400, "invalid_json"),
    ("empty", {"data": "", "content_type": "application/json"}, 400, "invalid_json"),
    ("empty object", {"json": {}}, 400, "missing_field"),
    ("over 1 MiB", {"data": TOO_LARGE, "content_type": "application/json"}, 413, "body_too_large"),
]


def body_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, method, request schema) of every operation that takes a JSON body."""
    return [
        (path, method, resolve(document, operation["requestBody"]["content"]["application/json"]["schema"]))
        for path, method, operation in documented_operations(document)
        if "requestBody" in operation
    ]


@pytest.mark.parametrize(("kwargs", "status", "code"), [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES])
def test_a_bad_body(
    app: Flask, client: Any, document: dict[str, Any], kwargs: dict[str, Any], status: int, code: str
) -> None:
    operations = body_operations(document)
    assert {(path, method) for path, method, _schema in operations} >= {
        ("/api/v1/residents", "POST"),
        ("/api/v1/session", "POST"),
        ("/api/v1/verify", "POST"),
    }
    for path, method, _schema in operations:
        headers = credentials(app, client, document, path, method)
        response = client.open(path, method=method, headers=headers, **kwargs)
        assert_error(document, path, method, response, status, code)


# -- strict JSON: a body that no two parsers read differently --------------------------------

JSON = "application/json"
STRICT_JSON_ROUTES = {
    ("/api/v1/devices", "POST"),
    ("/api/v1/residents", "POST"),
    ("/api/v1/session", "POST"),
    ("/api/v1/verify", "POST"),
    ("/api/v1/usage", "POST"),
}


def valid_body(client: Any, path: str) -> dict[str, Any]:
    """A body the operation takes (a 2xx) as plain UTF-8 JSON."""
    if path == "/api/v1/residents":
        return registration()
    if path == "/api/v1/session":
        body = registration()
        assert client.post("/api/v1/residents", json=body).status_code == 201
        return {"phone": body["phone"], "password": body["password"]}
    if path == "/api/v1/verify":
        return {"token": "x", "scene": "venue", "context": {"venue_id": "museum-1"}}
    if path == "/api/v1/devices":
        return {"public_key": DEVICE_JWK}
    assert path == "/api/v1/usage", f"{path}: add a valid body for it here"
    return {"records": []}


# A phone's P-256 public key, as WebCrypto exports it.
_DEVICE_POINT = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
DEVICE_JWK = {
    "kty": "EC",
    "crv": "P-256",
    "x": b64url_encode(_DEVICE_POINT.x.to_bytes(32, "big")),
    "y": b64url_encode(_DEVICE_POINT.y.to_bytes(32, "big")),
    "ext": True,
    "key_ops": ["verify"],
}


def with_member(text: str, member: bytes) -> bytes:
    """The JSON object ``text`` as UTF-8, with one more member, written as given."""
    return text[:-1].encode("utf-8") + b", " + member + b"}"


def repeating_a_member(text: str) -> bytes:
    """``text`` with its last member written a first time before, holding another value."""
    name = list(json.loads(text))[-1]
    return f'{{"{name}": "the other value", {text[1:]}'.encode()


# name -> the body's bytes, from the JSON text of a body the route takes.
STRICT_JSON_ATTACKS: dict[str, Callable[[str], bytes]] = {
    "a UTF-8 byte order mark": lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"),
    "UTF-16 with a byte order mark": lambda text: text.encode("utf-16"),
    "UTF-16LE": lambda text: text.encode("utf-16-le"),
    "UTF-16BE": lambda text: text.encode("utf-16-be"),
    "UTF-32 with a byte order mark": lambda text: text.encode("utf-32"),
    "UTF-32LE": lambda text: text.encode("utf-32-le"),
    "a repeated member": repeating_a_member,
    "a repeated member, nested": lambda text: with_member(text, b'"nested": {"a": 1, "a": 2}'),
    "a repeated member, deep in arrays": lambda text: with_member(text, b'"n": [[{"a": [{"b": {"c": 1, "c": 2}}]}]]'),
    "NaN": lambda text: with_member(text, b'"n": NaN'),
    "Infinity": lambda text: with_member(text, b'"n": Infinity'),
    "-Infinity": lambda text: with_member(text, b'"n": -Infinity'),
    "an escaped lone surrogate": lambda text: with_member(text, b'"s": "\\ud800"'),
    "an escaped lone surrogate as a name": lambda text: with_member(text, b'"\\udc00": 1'),
    "a lone surrogate in UTF-8": lambda text: with_member(text, b'"s": "\xed\xa0\x80"'),
}


@pytest.mark.parametrize("attack", list(STRICT_JSON_ATTACKS))
def test_strict_json_attacks(app: Flask, client: Any, document: dict[str, Any], attack: str) -> None:
    """A body a proxy in front could read otherwise than the service, or that is not UTF-8 JSON
    (RFC 8259 sections 8.1 and 8.2; RFC 7493 section 2): 400 invalid_json on every JSON route,
    which takes the same body as plain UTF-8 JSON."""
    operations = {(path, method) for path, method, _schema in body_operations(document)}
    assert operations == STRICT_JSON_ROUTES, "a new JSON route: give it a valid body in valid_body"
    for path, method in sorted(operations):
        headers = credentials(app, client, document, path, method)
        text = json.dumps(valid_body(client, path), ensure_ascii=False)
        data = STRICT_JSON_ATTACKS[attack](text)
        response = client.open(path, method=method, headers=headers, data=data, content_type=JSON)
        assert_error(document, path, method, response, 400, "invalid_json")
        plain = client.open(path, method=method, headers=headers, data=text.encode("utf-8"), content_type=JSON)
        assert plain.status_code in (200, 201), (path, plain.get_json())


@pytest.mark.parametrize("charset", ["utf-16", "UTF-32", "iso-8859-1", "utf-7"])
def test_a_charset_other_than_utf8_is_415(app: Flask, client: Any, document: dict[str, Any], charset: str) -> None:
    """The bytes are read as UTF-8: a proxy that honours another charset would read them otherwise."""
    for path, method, _schema in body_operations(document):
        headers = credentials(app, client, document, path, method)
        data = json.dumps(valid_body(client, path)).encode("ascii")
        content_type = f"{JSON}; charset={charset}"
        response = client.open(path, method=method, headers=headers, data=data, content_type=content_type)
        assert_error(document, path, method, response, 415, "unsupported_media_type")


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"'])
def test_the_utf8_charset_is_taken(app: Flask, client: Any, document: dict[str, Any], charset: str) -> None:
    content_type = f"{JSON}; charset={charset}"
    for path, method, _schema in body_operations(document):
        headers = credentials(app, client, document, path, method)
        data = json.dumps(valid_body(client, path), ensure_ascii=False).encode("utf-8")
        response = client.open(path, method=method, headers=headers, data=data, content_type=content_type)
        assert response.status_code in (200, 201), (path, response.get_json())


def json_type(value: Any) -> str:
    if type(value) in (int, float):
        return "number"
    return {str: "string", bool: "boolean", list: "array", dict: "object"}[type(value)]


# A value the field's own type allows, that passes the type check (what follows may refuse it).
SAMPLE_VALUES = {"string": "a string", "array": [], "object": {}}


@pytest.mark.parametrize("wrong", [1, 1.5, True, "text", [], {}, ["x"]], ids=repr)
def test_a_field_of_the_wrong_type(app: Flask, client: Any, document: dict[str, Any], wrong: Any) -> None:
    for path, method, schema in body_operations(document):
        headers = credentials(app, client, document, path, method)
        types = {name: property_schema["type"] for name, property_schema in schema["properties"].items()}
        valid = {name: SAMPLE_VALUES[types[name]] for name in schema["required"]}

        def post(body: dict[str, Any]) -> Any:
            return client.open(path, method=method, headers=headers, json=body)  # noqa: B023 - called in this iteration only

        for name in schema["required"]:
            for body in ({key: value for key, value in valid.items() if key != name}, {**valid, name: None}):
                assert_error(document, path, method, post(body), 400, "missing_field")
            if json_type(wrong) == types[name]:
                continue
            response = post({**valid, name: wrong})
            assert_error(document, path, method, response, 400, "wrong_type")
            assert repr(name) in response.get_json()["error"]["message"]
        # An optional object (a scanner's context) of another type.
        for name, property_type in types.items():
            if name not in schema["required"] and "object" in property_type and json_type(wrong) != "object":
                assert_error(document, path, method, post({**valid, name: wrong}), 400, "wrong_type")


# -- routes that need a session --------------------------------------------------------------


def test_no_credentials_is_401(app: Flask, client: Any, document: dict[str, Any]) -> None:
    """Without a session or a scanner key, the operations that need one are 401, whatever the body."""
    secured = [
        (path, method, operation)
        for path, method, operation in documented_operations(document)
        if {} not in operation["security"]
    ]
    assert len(secured) >= 3
    scanner_key(app)  # a scanner exists: the key sent must still be the right one
    forged = [
        {},
        {"Authorization": "Bearer csk_forged"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Cookie": "codeservice_session=eyJyaWQiOjF9.forged.signature"},  # tampered with: no session
    ]
    for path, method, operation in secured:
        (code,) = error_codes(document, operation["responses"]["401"])
        for headers in forged:
            for body in (None, {"token": "x", "scene": "venue"}, {}):
                response = client.open(path, method=method, headers=headers, json=body)
                assert_error(document, path, method, response, 401, code)


# -- each documented error, once -------------------------------------------------------------


def register(client: Any, **overrides: Any) -> Any:
    return client.post("/api/v1/residents", json=registration(**overrides))


def log_in(client: Any, phone: str, password: str = DEMO_PASSWORD) -> Any:
    return client.post("/api/v1/session", json={"phone": phone, "password": password})


def twice(client: Any, field: str) -> Any:
    """A second registration with one field of the first: its identity document or its phone."""
    body = registration()
    assert client.post("/api/v1/residents", json=body).status_code == 201
    return register(client, **{field: body[field]})


def wrong_check_character() -> str:
    valid = gb11643_id("31010419900101123")
    return valid[:-1] + ("1" if valid[-1] == "0" else "0")


def throttled(client: Any) -> Any:
    for _ in range(5):
        log_in(client, "13900139000", "not the password")
    return log_in(client, "13900139000", "not the password")


def revoked(client: Any, app: Flask) -> Any:
    body = registration()
    register(client, **body)
    log_in(client, body["phone"])
    with app.app_context():
        session = db.session()
        resident = find_by_phone(session, data_keys(), body["phone"])
        assert resident is not None
        resident.revoked_at = resident.created_at
        session.commit()
    return client.get("/api/v1/code")


def scene_not_permitted(client: Any, app: Flask) -> Any:
    key = scanner_key(app, ["venue"])
    body = {"token": "x", "scene": "transit", "context": {"station": "A", "direction": "in"}}
    return client.post("/api/v1/verify", json=body, headers={"Authorization": f"Bearer {key}"})


def upload(client: Any, app: Flask, records: list[Any]) -> Any:
    headers = {"Authorization": f"Bearer {scanner_key(app)}"}
    return client.post("/api/v1/usage", json={"records": records}, headers=headers)


def logged_in(client: Any) -> Any:
    body = registration()
    register(client, **body)
    log_in(client, body["phone"])
    return client


def history(client: Any, app: Flask, query: str) -> Any:
    body = registration()
    register(client, **body)
    log_in(client, body["phone"])
    return client.get(f"/api/v1/me/usage?{query}")


Case = Callable[[Any, Flask], Any]
# name -> (path, method, status, code, how to get it)
ERROR_CASES: dict[str, tuple[str, str, int, str, Case]] = {
    "invalid name": ("/api/v1/residents", "POST", 422, "invalid_name", lambda c, a: register(c, name="\n")),
    "invalid id_type": (
        "/api/v1/residents", "POST", 422, "invalid_id_type", lambda c, a: register(c, id_type="visa")
    ),
    "invalid id_number": (
        "/api/v1/residents",
        "POST",
        422,
        "invalid_id_number",
        lambda c, a: register(c, id_number=wrong_check_character()),
    ),
    "invalid phone": ("/api/v1/residents", "POST", 422, "invalid_phone", lambda c, a: register(c, phone="12345")),
    "weak password": (
        "/api/v1/residents", "POST", 422, "weak_password", lambda c, a: register(c, password="1234567890")
    ),
    "identity taken": ("/api/v1/residents", "POST", 409, "identity_taken", lambda c, a: twice(c, "id_number")),
    "phone taken": ("/api/v1/residents", "POST", 409, "phone_taken", lambda c, a: twice(c, "phone")),
    "bad credentials": ("/api/v1/session", "POST", 401, "bad_credentials", lambda c, a: log_in(c, "13900139000")),
    "too many attempts": ("/api/v1/session", "POST", 429, "too_many_attempts", lambda c, a: throttled(c)),
    "code revoked": ("/api/v1/code", "GET", 403, "code_revoked", revoked),
    "invalid scanner key": (
        "/api/v1/verify",
        "POST",
        401,
        "invalid_scanner_key",
        lambda c, a: c.post("/api/v1/verify", json={}, headers={"Authorization": "Bearer csk_unknown"}),
    ),
    "scene not permitted": ("/api/v1/verify", "POST", 403, "scene_not_permitted", scene_not_permitted),
    "batch too large": ("/api/v1/usage", "POST", 400, "batch_too_large", lambda c, a: upload(c, a, [{}] * 1001)),
    "invalid usage record": ("/api/v1/usage", "POST", 400, "invalid_usage_record", lambda c, a: upload(c, a, [1])),
    "invalid limit": ("/api/v1/me/usage", "GET", 400, "invalid_limit", lambda c, a: history(c, a, "limit=0")),
    "invalid cursor": ("/api/v1/me/usage", "GET", 400, "invalid_cursor", lambda c, a: history(c, a, "before=%21")),
    "invalid public key": (
        "/api/v1/devices",
        "POST",
        400,
        "invalid_public_key",
        lambda c, a: logged_in(c).post("/api/v1/devices", json={"public_key": {**DEVICE_JWK, "crv": "P-384"}}),
    ),
    "device not found": (
        "/api/v1/devices/{device_id}/credential",
        "POST",
        404,
        "device_not_found",
        lambda c, a: logged_in(c).post("/api/v1/devices/AAAAAAAAAAAAAAAA/credential"),
    ),
}
FIELD_OF_CODE = {
    "invalid_name": "name",
    "invalid_id_type": "id_type",
    "invalid_id_number": "id_number",
    "invalid_phone": "phone",
    "weak_password": "password",
}
# Codes the tests above provoke on every route they apply to.
GENERIC_CODES = {"method_not_allowed", "not_found", "not_authenticated", "invalid_scanner_key", "wrong_type"} | {
    c[3] for c in BAD_BODIES
}


@pytest.mark.parametrize("name", sorted(ERROR_CASES))
def test_each_error(app: Flask, client: Any, document: dict[str, Any], name: str) -> None:
    path, method, status, code, provoke = ERROR_CASES[name]
    response = provoke(client, app)
    assert_error(document, path, method, response, status, code)
    if status == 422:
        assert response.get_json()["error"]["field"] == FIELD_OF_CODE[code]
    if status == 429:
        assert int(response.headers["Retry-After"]) > 0


def test_every_documented_code_is_provoked() -> None:
    """The document lists no code that the tests cannot make the service send."""
    documented = {code for error in ERROR_RESPONSES.values() for code in error.codes}
    provoked = GENERIC_CODES | {case[3] for case in ERROR_CASES.values()} | set(PROVOKED_BY_CONFIGURATION)
    assert documented == provoked


# -- arbitrary bodies --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """A SQLite-only app for the fuzzing below (function-scoped fixtures and hypothesis do not mix)."""
    directory: Path = tmp_path_factory.mktemp("fuzz")
    keys = new_keys_dir(directory / "keys")
    application = create_app(
        {
            "DATABASE_URL": f"sqlite:///{directory / 'fuzz.db'}",
            "KEYS_DIR": str(keys),
            "ENV": "development",
            "RATE_LIMITS": "off",  # 200 fuzzed requests a minute are not what is tested here
        }
    )
    application.testing = True
    with application.app_context():
        db.init_db()
    yield application
    with application.app_context():
        db.engine().dispose()


@pytest.fixture(scope="module")
def sqlite_document(sqlite_app: Flask) -> dict[str, Any]:
    return openapi_document(sqlite_app)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FIELDS = ("name", "id_type", "id_number", "phone", "password")
digits = st.text(string.digits, min_size=3, max_size=3)


@st.composite
def plausible_registrations(draw: st.DrawFn) -> dict[str, Any]:
    """A valid registration, then some fields replaced by arbitrary JSON."""
    body = {
        "name": draw(st.sampled_from(["张三明", "Anna Li", "欧阳 娜娜"])),
        "id_type": "resident_id",
        "id_number": gb11643_id(f"3101041985{draw(st.sampled_from(['0101', '0229', '1231']))}{draw(digits)}"),
        "phone": f"139{draw(st.integers(0, 10**8 - 1)):08d}",
        "password": draw(st.sampled_from([DEMO_PASSWORD, "another long passphrase"])),
    }
    for name in draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=3)):
        body[name] = draw(json_values | st.text(max_size=40))
    return body


json_bodies = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(FIELDS), json_values | st.text(max_size=40), max_size=6),
    plausible_registrations(),
).map(lambda value: (json.dumps(value, ensure_ascii=False).encode("utf-8"), "application/json"))
raw_bodies = st.tuples(
    st.binary(max_size=300),
    st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", None]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(["/api/v1/residents", "/api/v1/session"]), body=json_bodies | raw_bodies)
def test_arbitrary_bodies(
    sqlite_app: Flask, sqlite_document: dict[str, Any], path: str, body: tuple[bytes, str | None]
) -> None:
    data, content_type = body
    response = sqlite_app.test_client().post(path, data=data, content_type=content_type)
    event(f"{path} {response.status_code}")  # the spread shows with --hypothesis-show-statistics
    if response.status_code in (200, 201):
        assert (path, response.status_code) in {("/api/v1/residents", 201), ("/api/v1/session", 200)}
        assert set(response.get_json()) == {"resident"}
        return
    problem = error_problem(sqlite_document, path, "POST", response)
    assert problem is None, problem


@pytest.fixture(scope="module")
def sqlite_scanner(sqlite_app: Flask) -> tuple[dict[str, str], list[str]]:
    """A scanner key's header, and real codes (valid for 5 minutes) of residents, for the fuzzing below."""
    headers = {"Authorization": f"Bearer {scanner_key(sqlite_app)}"}
    with sqlite_app.app_context():
        signer = key_store().signer()
        tokens = [
            issue_code(
                signer,
                sub=new_code_id(),
                scopes=scopes,
                category=category,
                now=int(time.time()),
                ttl=300,
                issuer=sqlite_app.config["ISSUER"],
            )
            for scopes in (ALL_SCENES, ["venue"])
            for category in (None, "senior")
        ]
    return headers, tokens


contexts = st.fixed_dictionaries(
    {},
    optional={
        "department": st.text(max_size=10) | json_values,
        "appointments": st.dictionaries(st.text(max_size=16), st.text(max_size=5) | json_values, max_size=3),
        "station": st.sampled_from(["A", "B"]) | json_values,
        "direction": st.sampled_from(["in", "out"]) | json_values,
        "line": st.text(max_size=3) | json_values,
        "venue_id": st.text(max_size=10) | json_values,
        "capacity": st.integers(-2, 3) | json_values,
        "reservations": st.dictionaries(st.text(max_size=16), json_values, max_size=3) | json_values,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_arbitrary_verify_requests(
    sqlite_app: Flask,
    sqlite_document: dict[str, Any],
    sqlite_scanner: tuple[dict[str, str], list[str]],
    data: st.DataObject,
) -> None:
    """Any body from a scanner: a decision (200) or a 4xx error, never a 5xx."""
    headers, tokens = sqlite_scanner
    well_formed = st.fixed_dictionaries(
        {"token": st.sampled_from(tokens) | st.text(max_size=60), "scene": st.sampled_from([*ALL_SCENES, "nope"])},
        optional={"context": contexts},
    )
    loose = st.fixed_dictionaries(
        {},
        optional={
            "token": st.sampled_from(tokens) | json_values,
            "scene": st.sampled_from(ALL_SCENES) | json_values,
            "context": contexts | json_values,
        },
    )
    body = data.draw(st.one_of(well_formed, well_formed, loose, json_values))
    response = sqlite_app.test_client().post("/api/v1/verify", json=body, headers=headers)
    event(f"verify {response.status_code}")
    if response.status_code == 200:
        decision = response.get_json()
        schema = {"$ref": "#/components/schemas/Decision"}
        assert validate(sqlite_document, schema, decision) == []
        assert decision["ok"] == (decision["code"] == "accepted")
        event(f"decision {decision['code']}")
        return
    problem = error_problem(sqlite_document, "/api/v1/verify", "POST", response)
    assert problem is None, problem
