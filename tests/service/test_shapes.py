"""Each shape declared once: what writes or reads an object follows its declared members.

A decision and a usage record are declared in ``verifiers.decision``; the
request bodies in the service's modules. ``json_body`` reads each body by its
declaration, and the OpenAPI schemas are built from the same declarations
(``tests/test_openapi.py`` holds the document to its snapshot).
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import registration

from codeservice import usage
from codeservice.identity import REGISTRATION
from codeservice.residents import LOGIN
from codeservice.scanning import VERIFY_REQUEST
from codeservice.web import REGISTER_FIELDS
from verifiers.decision import DECISION, USAGE_RECORD, Decision, usage_record
from verifiers.shapes import Member, names


def test_a_decision_is_its_declared_members_in_order() -> None:
    decision = Decision(False, "expired", "clinic", "sub", "jti", 5, "the code has expired", {"department": "x"})
    assert tuple(decision.to_dict()) == names(DECISION)
    assert decision.to_dict()["detail"] == {"department": "x"}


def test_a_usage_record_is_its_declared_members_in_order() -> None:
    decision = Decision(True, "accepted", "clinic", "sub", "jti", 5, "accepted")
    record = usage_record(decision, venue_id="v1", device_id="d1", decided_at=1_700_000_000.25)
    assert tuple(record) == names(USAGE_RECORD) == usage.RECORD_FIELDS
    assert record["decided_at"] == "2023-11-14T22:13:20.250Z"


def test_the_registration_form_holds_the_registration_body() -> None:
    assert REGISTER_FIELDS == names(REGISTRATION) == ("name", "id_type", "id_number", "phone", "password")


def test_a_member_knows_its_json_types() -> None:
    context = Member("context", {"type": ["object", "null"]}, required=False)
    assert (context.json_types, context.nullable) == (("object",), True)
    assert Member("token", {"type": "string"}, "The code.").json_schema() == {
        "type": "string",
        "description": "The code.",
    }


# -- attacks: each declared member of the wrong JSON type ------------------------------------------

# The endpoint of each declared body, and the credentials it needs first.
BODIES = {
    "/api/v1/residents": (REGISTRATION, None),
    "/api/v1/session": (LOGIN, None),
    "/api/v1/verify": (VERIFY_REQUEST, "scanner"),
    "/api/v1/usage": (usage.UPLOAD, "scanner"),
}
WRONG = {"string": 7, "array": {"records": []}, "object": ["not", "an", "object"]}
NAMED = {"string": "a string", "array": "an array", "object": "an object"}


@pytest.mark.parametrize("path", sorted(BODIES))
def test_a_member_of_the_wrong_type_is_400_wrong_type_naming_its_type(client: Any, scanner_key: str, path: str) -> None:
    members, credentials = BODIES[path]
    headers = {"Authorization": f"Bearer {scanner_key}"} if credentials == "scanner" else {}
    valid = {**registration(), "token": "not.a.code", "scene": "clinic", "records": []}
    for member in members:
        (kind,) = member.json_types
        response = client.post(path, json={**valid, member.name: WRONG[kind]}, headers=headers)
        assert response.status_code == 400, (path, member.name)
        error = response.get_json()["error"]
        assert error["code"] == "wrong_type"
        assert error["message"] == f"the field {member.name!r} must be {NAMED[kind]}"


@pytest.mark.parametrize("path", sorted(BODIES))
def test_a_required_member_missing_or_null_is_400_missing_field(client: Any, scanner_key: str, path: str) -> None:
    members, credentials = BODIES[path]
    headers = {"Authorization": f"Bearer {scanner_key}"} if credentials == "scanner" else {}
    valid = {**registration(), "token": "not.a.code", "scene": "clinic", "records": []}
    for member in members:
        if not member.required:
            continue
        for body in ({k: v for k, v in valid.items() if k != member.name}, {**valid, member.name: None}):
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 400, (path, member.name)
            assert response.get_json()["error"] == {
                "code": "missing_field",
                "message": f"the field {member.name!r} is required",
            }


def test_an_optional_member_may_be_null_or_absent(client: Any, scanner_key: str) -> None:
    headers = {"Authorization": f"Bearer {scanner_key}"}
    for body in (
        {"token": "not.a.code", "scene": "clinic"},
        {"token": "not.a.code", "scene": "clinic", "context": None},
    ):
        response = client.post("/api/v1/verify", json=body, headers=headers)
        assert response.status_code == 200  # a decision, not an error: the clinic wants a context
        assert response.get_json()["code"] == "bad_context"
