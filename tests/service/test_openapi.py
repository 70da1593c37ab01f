"""The OpenAPI document: well-formed 3.1, and the JSON routes exactly.

No validator package: a structural check of what we rely on (operations,
responses, references, security) and a small JSON Schema subset validator,
enough to hold the real responses to the schemas the document gives.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from helpers import (
    ALL_SCENES,
    CONVERTER,
    DEMO_PASSWORD,
    PROVOKED_BY_CONFIGURATION,
    TESTS,
    documented_operations,
    error_codes,
    json_routes,
    new_keys_dir,
    pointer,
    registration,
    resolve,
    response_schema,
    validate,
)
from servers import free_port

import codeservice
from codeservice import create_app, db, errors, scanners
from codeservice.errors import DatabaseUnavailable, RateLimited
from codeservice.openapi import ERROR_RESPONSES, FIELD_ERROR_CODES, openapi_document
from codeservice.protection import LIMITS
from verifiers import SceneRegistry

TOP_LEVEL_FIELDS = {
    "openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components", "security", "tags",
    "externalDocs",
}
STATUS_KEY = re.compile(r"[1-5](?:[0-9]{2}|XX)\Z|default\Z")


# -- helpers shared with test_error_shape.py --------------------------------------


# -- fixtures ----------------------------------------------------------------------


def make_app(directory: Path, **config: Any) -> Flask:
    """An app with its own keys in ``directory``, on a SQLite file there unless ``config`` says otherwise."""
    keys = new_keys_dir(directory / "keys")
    return create_app(
        {"DATABASE_URL": f"sqlite:///{directory / 'openapi.db'}", "KEYS_DIR": str(keys), **config}
    )


@pytest.fixture(scope="module")
def bare_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """An app for what needs no database: the URL map and the document."""
    return make_app(tmp_path_factory.mktemp("openapi"))


@pytest.fixture(scope="module")
def document(bare_app: Flask) -> dict[str, Any]:
    return openapi_document(bare_app)


# -- the document's structure --------------------------------------------------------


def test_it_is_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    assert isinstance(document["info"]["title"], str) and isinstance(document["info"]["version"], str)
    assert set(document) <= TOP_LEVEL_FIELDS
    json.dumps(document)  # plain JSON data


def test_every_operation_has_responses(document: dict[str, Any]) -> None:
    operation_ids = []
    for path, method, operation in documented_operations(document):
        assert path.startswith("/")
        operation_ids.append(operation["operationId"])
        responses = operation["responses"]
        assert responses, f"{method} {path} has no responses"
        assert any(status.startswith("2") for status in responses), f"{method} {path}: no success response"
        for status, response in responses.items():
            assert STATUS_KEY.match(status), f"{method} {path}: response key {status!r}"
            assert isinstance(resolve(document, response)["description"], str)
        body = operation.get("requestBody")
        if body is not None:
            assert body["content"], f"{method} {path}: a request body without content"
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(document))
    assert found
    for ref in found:
        pointer(document, ref)


def test_every_component_is_used(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    for kind, components in document["components"].items():
        if kind == "securitySchemes":
            continue
        for name in components:
            used = f'"#/components/{kind}/{name}"' in text
            # 404 and 405 belong to no one operation: the description names them.
            assert used or kind == "responses", f"components/{kind}/{name} is never referenced"


def test_security(document: dict[str, Any], bare_app: Flask) -> None:
    schemes = document["components"]["securitySchemes"]
    session, scanner = schemes["session"], schemes["scanner"]
    # In production (bare_app's ENV) the cookie's name has the __Host- prefix.
    assert (session["type"], session["in"], session["name"]) == ("apiKey", "cookie", "__Host-codeservice_session")
    assert session["name"] == bare_app.config["SESSION_COOKIE_NAME"]
    assert (scanner["type"], scanner["scheme"]) == ("http", "bearer")
    required: dict[str, set[tuple[str, str]]] = {name: set() for name in schemes}
    for path, method, operation in documented_operations(document):
        for requirement in operation["security"]:
            assert set(requirement) <= set(schemes), f"{method} {path}"
        if {} not in operation["security"]:
            (requirement,) = operation["security"]
            (name,) = requirement
            required[name].add((path, method))
    assert required == {
        "session": {
            ("/api/v1/code", "GET"),
            ("/api/v1/code.png", "GET"),
            ("/api/v1/me/usage", "GET"),
            ("/api/v1/devices", "POST"),
            ("/api/v1/devices/{device_id}/credential", "POST"),
            ("/api/v1/me/devices", "GET"),
            ("/api/v1/me/devices/{device_id}", "DELETE"),
        },
        "scanner": {("/api/v1/verify", "POST"), ("/api/v1/usage", "POST")},
    }


def test_error_responses_carry_their_classes_status(document: dict[str, Any]) -> None:
    def subclasses(cls: type) -> Iterator[type[errors.CodeserviceError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    by_code = {cls.code: cls.status for cls in subclasses(errors.CodeserviceError)}
    responses = document["components"]["responses"]
    for name, error in ERROR_RESPONSES.items():
        assert error_codes(document, responses[name]) == set(error.codes)
        for code in error.codes:
            status = 422 if code in FIELD_ERROR_CODES else by_code[code]  # InvalidField's codes are per instance
            assert status == error.status, f"{code} is documented under {error.status}"
        assert error.codes and all(code in resolve(document, responses[name])["description"] for code in error.codes)


def test_every_field_error_code_is_documented() -> None:
    """The 422 codes are the ones codeservice.identity raises (read from its source)."""
    source = (Path(codeservice.__file__).parent / "identity.py").read_text(encoding="utf-8")
    assert set(re.findall(r'code="([a-z_]+)"', source)) == set(FIELD_ERROR_CODES)


def test_the_verify_request_says_what_each_scene_wants_in_its_context(document: dict[str, Any]) -> None:
    description = document["components"]["schemas"]["VerifyRequest"]["properties"]["context"]["description"]
    for name, help_text in SceneRegistry.from_entry_points().context_help().items():
        assert help_text, f"the built-in scene {name} describes its context"
        assert f"- `{name}`: {help_text}\n" in description
    assert "`department` (string)" in description and "`direction` (`in` or `out`)" in description


def test_every_decision_code_is_documented(document: dict[str, Any]) -> None:
    """The rules' and the built-in scenes' codes (contract sections 2 and 3) appear in the Decision schema."""
    description = document["components"]["schemas"]["Decision"]["properties"]["code"]["description"]

    built_in = {"accepted", *SceneRegistry.from_entry_points().rejection_codes()}
    assert {"passback", "capacity_full", "no_appointment", "replayed"} <= built_in
    for code in built_in:
        assert re.search(rf"(?<![a-z_]){code}(?![a-z_])", description), code


def test_the_document_is_served(client: Any, app: Flask) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == openapi_document(app)


def test_the_served_document_is_the_snapshot(bare_app: Flask) -> None:
    """What /openapi.json serves changes only on purpose: a change updates ``tests/data/openapi.json``."""
    snapshot = json.loads((TESTS / "data" / "openapi.json").read_text(encoding="utf-8"))
    assert bare_app.test_client().get("/openapi.json").get_json() == snapshot


# -- the document and the routes -------------------------------------------------------


def test_every_json_route_is_documented_and_nothing_else(document: dict[str, Any], bare_app: Flask) -> None:
    routes = json_routes(bare_app)
    documented = {(path, method) for path, method, _operation in documented_operations(document)}
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented operations without a route"


def test_the_page_routes_are_left_out(bare_app: Flask) -> None:
    """The filter leaves out the HTML pages, and only them."""
    paths = {path for path, _method in json_routes(bare_app)}
    assert all(path.startswith(("/api/", "/.well-known/", "/healthz", "/readyz", "/openapi.json")) for path in paths)
    assert not {"/register", "/login", "/code", "/history"} & paths


# -- the schemas hold the real responses -------------------------------------------------


def assert_valid(document: dict[str, Any], path: str, method: str, response: Any) -> None:
    schema = response_schema(document, path, method, response.status_code)
    assert validate(document, schema, json.loads(response.data)) == []


def test_the_responses_match_their_schemas(app: Flask, client: Any) -> None:
    document = openapi_document(app)
    body = registration()
    assert_valid(document, "/api/v1/residents", "post", client.post("/api/v1/residents", json=body))
    assert_valid(document, "/api/v1/residents", "post", client.post("/api/v1/residents", json=body))  # 409
    assert_valid(document, "/api/v1/residents", "post", client.post("/api/v1/residents", json={**body, "name": ""}))
    wrong_password = {"phone": body["phone"], "password": "x"}
    assert_valid(document, "/api/v1/session", "post", client.post("/api/v1/session", json=wrong_password))
    assert_valid(document, "/api/v1/code", "get", client.get("/api/v1/code"))  # 401
    login = client.post("/api/v1/session", json={"phone": body["phone"], "password": body["password"]})
    assert_valid(document, "/api/v1/session", "post", login)
    assert_valid(document, "/api/v1/code", "get", client.get("/api/v1/code"))
    assert_valid(document, "/.well-known/jwks.json", "get", client.get("/.well-known/jwks.json"))
    assert_valid(document, "/healthz", "get", client.get("/healthz"))
    with app.app_context():
        _scanner, key = scanners.add_scanner(
            db.session(), venue_id="v", device_id="d", scenes=ALL_SCENES, installed=ALL_SCENES, now=datetime.now(UTC)
        )
    scanner = {"Authorization": f"Bearer {key}"}
    token = client.get("/api/v1/code").get_json()["token"]
    for body in ({"token": token, "scene": "venue"}, {"token": token, "scene": "venue"}, {"token": "x", "scene": "?"}):
        assert_valid(document, "/api/v1/verify", "post", client.post("/api/v1/verify", json=body, headers=scanner))
    assert_valid(document, "/api/v1/verify", "post", client.post("/api/v1/verify", json={}))  # 401
    history = client.get("/api/v1/me/usage?limit=1")
    assert_valid(document, "/api/v1/me/usage", "get", history)
    (record,) = history.get_json()["records"]
    assert history.get_json()["next"] is not None  # the second verification's record
    assert_valid(document, "/api/v1/me/usage", "get", client.get("/api/v1/me/usage?limit=1000"))  # 400
    upload = client.post("/api/v1/usage", json={"records": [record]}, headers=scanner)
    assert_valid(document, "/api/v1/usage", "post", upload)
    assert upload.get_json() == {"accepted": 0, "duplicates": 1}
    revocations = client.get("/api/v1/revocations")
    (media_type,) = resolve(document, document["paths"]["/api/v1/revocations"]["get"]["responses"]["200"])["content"]
    assert revocations.mimetype == media_type
    schema = response_schema(document, "/api/v1/revocations", "get", 200)
    assert validate(document, schema, revocations.data.decode("ascii")) == []


def test_the_validator_catches_mismatches(document: dict[str, Any]) -> None:
    code = {"$ref": "#/components/schemas/Code"}
    good = {"token": "a.b.c", "expires_at": 2, "refresh_after": 1, "qr_svg": "<svg/>"}
    assert validate(document, code, good) == []
    assert validate(document, code, {**good, "expires_at": True})
    assert validate(document, code, {**good, "extra": 1})
    assert validate(document, code, {k: v for k, v in good.items() if k != "token"})
    error = response_schema(document, "/api/v1/code", "get", 401)
    assert validate(document, error, {"error": {"code": "not_authenticated", "message": "m"}}) == []
    assert validate(document, error, {"error": {"code": "bad_credentials", "message": "m"}})


# -- the rate limits and the database ----------------------------------------------------------


def documenting(document: dict[str, Any], status: int, code: str) -> set[tuple[str, str]]:
    """(path, upper-case method) of the operations whose ``status`` response lists the error ``code``."""
    return {
        (path, method)
        for path, method, operation in documented_operations(document)
        if str(status) in operation["responses"] and code in error_codes(document, operation["responses"][str(status)])
    }


def rate_limited_operations(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of the JSON routes a budget of codeservice.protection limits."""
    limited = set()
    for rule in app.url_map.iter_rules():
        for budget in LIMITS.values():
            if rule.endpoint in budget.endpoints:
                path = CONVERTER.sub(r"{\1}", rule.rule)
                limited.update((path, method) for method in budget.methods if method in (rule.methods or set()))
    return limited & json_routes(app)


def assert_retry_after_documented(document: dict[str, Any], operations: set[tuple[str, str]], status: int) -> None:
    for path, method in operations:
        response = resolve(document, document["paths"][path][method.lower()]["responses"][str(status)])
        assert "Retry-After" in response["headers"], f"{method} {path} {status}"


def test_the_rate_limited_operations_document_429_rate_limited(document: dict[str, Any], bare_app: Flask) -> None:
    limited = rate_limited_operations(bare_app)
    assert limited == {
        ("/api/v1/session", "POST"),
        ("/api/v1/residents", "POST"),
        ("/api/v1/code", "GET"),
        ("/api/v1/code.png", "GET"),
        ("/api/v1/devices", "POST"),
        ("/api/v1/devices/{device_id}/credential", "POST"),
        ("/api/v1/me/devices", "GET"),
        ("/api/v1/me/devices/{device_id}", "DELETE"),
        ("/api/v1/verify", "POST"),
    }
    assert documenting(document, 429, RateLimited.code) == limited
    assert_retry_after_documented(document, limited, 429)
    # A login's one 429 is the per-phone cool-down too.
    login = document["paths"]["/api/v1/session"]["post"]["responses"]["429"]
    assert error_codes(document, login) == {errors.TooManyAttempts.code, RateLimited.code}


def test_the_database_backed_operations_document_503_database_unavailable(document: dict[str, Any]) -> None:
    """Every /api/v1 operation reads or writes the database (logging out, with a session); the others do not."""
    api = {(path, method) for path, method, _operation in documented_operations(document) if path.startswith("/api/")}
    assert documenting(document, 503, DatabaseUnavailable.code) == api
    assert_retry_after_documented(document, api, 503)


@pytest.fixture
def limited_app(tmp_path: Path) -> Iterator[Flask]:
    """Rate limits on, every budget one request a minute."""
    application = make_app(tmp_path, RATE_LIMITS="on", **{budget.config_key: "1/minute" for budget in LIMITS.values()})
    with application.app_context():
        db.init_db()
    yield application
    with application.app_context():
        db.engine().dispose()


@pytest.fixture
def unreachable_app(tmp_path: Path) -> Flask:
    """An app whose PostgreSQL is a closed port on this host: every connection is refused."""
    pytest.importorskip("psycopg")
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    return make_app(tmp_path, DATABASE_URL=closed, RATE_LIMITS="off")


def assert_documented_error(document: dict[str, Any], path: str, method: str, response: Any, code: str) -> None:
    """``response`` is the error ``code`` as the operation documents it: its body's schema, a Retry-After."""
    where = f"{method} {path} -> {response.status_code}"
    assert response.mimetype == "application/json", f"{where}: {response.data[:200]!r}"
    assert response.get_json()["error"]["code"] == code, f"{where}: {response.get_json()}"
    assert_valid(document, path, method.lower(), response)
    assert int(response.headers["Retry-After"]) >= 1, where


def test_over_a_rate_limit_the_answer_is_the_documented_429(limited_app: Flask) -> None:
    """Each operation twice in a minute, from its own address: the second is 429 exactly where documented."""
    document = openapi_document(limited_app)
    limited = documenting(document, 429, RateLimited.code)
    client = limited_app.test_client()
    for index, (path, method, _operation) in enumerate(documented_operations(document), start=1):
        address = {"REMOTE_ADDR": f"10.0.0.{index}"}
        client.open(path, method=method, environ_base=address)  # the budget's one request
        response = client.open(path, method=method, environ_base=address)
        if (path, method) in limited:
            assert_documented_error(document, path, method, response, RateLimited.code)
        else:
            assert response.status_code != 429, f"{method} {path}"
    assert limited


# A body that gets each operation past its checks of the request, to its database work.
SAMPLE_BODIES = {
    "/api/v1/residents": registration(),
    "/api/v1/session": {"phone": "13800138000", "password": DEMO_PASSWORD},
    "/api/v1/verify": {"token": "x", "scene": "venue"},
    "/api/v1/usage": {"records": []},
}


def test_without_the_database_the_answer_is_the_documented_503(unreachable_app: Flask) -> None:
    """Each operation as a client that passes its checks: 503 database_unavailable exactly where documented."""
    document = openapi_document(unreachable_app)
    backed = documenting(document, 503, DatabaseUnavailable.code)
    client = unreachable_app.test_client()
    with client.session_transaction() as session:  # a session cookie: finding its resident takes the database
        session.update(sub="q1w2e3r4t5y6u7i8", epoch=0, login_at=int(time.time()))
    scanner = {"Authorization": "Bearer csk_unknown"}  # and so does finding a scanner's key
    for path, method, operation in documented_operations(document):
        response = client.open(path, method=method, headers=scanner, json=SAMPLE_BODIES.get(path))
        if (path, method) in backed:
            assert_documented_error(document, path, method, response, DatabaseUnavailable.code)
        else:  # it answers without the database (readiness: its own 503)
            assert str(response.status_code) in operation["responses"], f"{method} {path}"
            assert_valid(document, path, method.lower(), response)
    assert backed


# The codes only these configurations produce (rate limits on, no database), and the
# test above that provokes each: test_error_shape.py counts them as provoked.


def test_each_code_provoked_by_a_configuration_has_its_test() -> None:
    for code, test_name in PROVOKED_BY_CONFIGURATION.items():
        assert code in (RateLimited.code, DatabaseUnavailable.code)
        assert callable(globals()[test_name]), test_name
