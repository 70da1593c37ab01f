"""Every operation of ``/openapi.json``, fed generated requests, answers as the description says.

Schemathesis reads the service's own OpenAPI description and sends each
operation requests built from it, valid ones and deliberately broken ones
(wrong types, missing members, odd strings, unknown methods), in process, on
SQLite and on PostgreSQL. Each answer must be no 5xx, a status code the
operation documents, and a body and headers matching the documented schema.

So that the generated data gets past the doors to the code behind them,
every request carries a real scanner key and a logged-in resident's session
cookie (replacing whatever was generated for them), and a verify request's
``scene`` is made one the key names and, for every other request, its
``token`` a fresh code signed by the service: the generated ``context``
then reaches the scenes' rules.

Left out, because the description states those rules in prose rather than
in the schema: whether a schema-valid request is accepted (an ID number's
check digit, a record older than 400 days) and whether a schema-violating
one is refused (unknown query parameters are ignored); and the checks that
drop or alter the credentials, which this test puts back on every request.
tests/test_error_shape.py and the endpoint tests hold those rules exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from helpers import ALL_SCENES, service_code
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
)

EXAMPLES_PER_OPERATION = 40
NOT_EXPRESSED_IN_THE_SCHEMA = [positive_data_acceptance, negative_data_rejection, missing_required_header, ignored_auth]


def _served_document() -> dict[str, Any]:
    """The description the service serves: it depends on the routes and installed scenes, not on data."""
    from codeservice import create_app
    from codeservice.openapi import openapi_document

    app = create_app({"DATABASE_URL": "sqlite://", "ENV": "development"})
    with app.app_context():
        return openapi_document(app)


def test_the_description_tested_is_the_one_served(client: Any) -> None:
    assert client.get("/openapi.json").get_json() == _served_document()


@pytest.fixture
def authenticate(app: Any, scanner_key: str, logged_in: Any) -> Callable[[Any], None]:
    """Puts a scanner's key (every scene) and a resident's session cookie on a generated case."""
    cookie = logged_in.get_cookie(app.config["SESSION_COOKIE_NAME"])

    def on(case: Any) -> None:
        case.headers["Authorization"] = f"Bearer {scanner_key}"
        case.cookies[cookie.key] = cookie.value

    return on


def present_a_real_code(case: Any, app: Any, keys_dir: Path) -> None:
    """A verify request at a scene the key names, every other one with a code the service signed."""
    body = case.body
    if case.operation.path != "/api/v1/verify" or not isinstance(body, dict):
        return
    if isinstance(body.get("scene"), str):
        body["scene"] = ALL_SCENES[len(body["scene"]) % len(ALL_SCENES)]
    if isinstance(body.get("token"), str) and len(body["token"]) % 2 == 0:
        body["token"] = service_code(app, keys_dir)


schema = schemathesis.openapi.from_dict(_served_document())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_answers_as_documented(
    case: Any, app: Any, keys_dir: Path, authenticate: Callable[[Any], None]
) -> None:
    authenticate(case)
    present_a_real_code(case, app, keys_dir)
    case.call_and_validate(app=app, excluded_checks=NOT_EXPRESSED_IN_THE_SCHEMA)
