"""Identity squatting, and ``residents reassign``: the staffed remedy after an in-person ID check.

Registration proves control of nothing (the phone is not verified by SMS,
the ID number is checked for format and check digit only), so anyone can
register someone else's ID number, and its owner is then refused
(``identity_taken``). ``residents reassign`` closes the account that holds
the identity (its sessions end, its code id joins the revocation list) and
opens one for the owner's phone, with a password the owner types at the desk.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers import DEMO_PASSWORD, add_scanner, gb11643_id, registration

from codeservice import db, residents
from codeservice.context import data_keys
from verifiers.jose import b64url_decode

OWNERS_PASSWORD = "the owner's own passphrase"
STAFF = "王芳 (desk 3)"


def reassign(runner: Any, id_number: str, phone: str, *extra: str, password: str = OWNERS_PASSWORD) -> Any:
    """``residents reassign``, the owner typing their password twice at the prompt."""
    args = ["residents", "reassign", "--id-number", id_number, "--phone", phone, "--name", "李四", *extra]
    if "--staff" not in extra:
        args += ["--staff", STAFF]
    return runner.invoke(args=args, input=f"{password}\n{password}\n")


def log_in(client: Any, phone: str, password: str) -> Any:
    return client.post("/api/v1/session", json={"phone": phone, "password": password})


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[1]))


def verify(client: Any, key: str, token: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/verify",
        json={"token": token, "scene": "venue", "context": {}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.fixture
def squatter(app: Any) -> tuple[Any, dict[str, Any]]:
    """A client logged in to an account registered with someone else's ID number, and its registration."""
    client = app.test_client()
    body = registration()
    assert client.post("/api/v1/residents", json=body).status_code == 201
    assert log_in(client, body["phone"], DEMO_PASSWORD).status_code == 200
    return client, body


@pytest.fixture
def owners_phone() -> str:
    return registration()["phone"]  # a fresh phone, with no account


# -- the attack and the remedy ---------------------------------------------------------


def test_a_squatted_identity_is_given_back_to_its_owner(
    app: Any, runner: Any, squatter: tuple[Any, dict[str, Any]], owners_phone: str
) -> None:
    squatter_client, squatted = squatter
    squatters_token = squatter_client.get("/api/v1/code").get_json()["token"]
    owner = app.test_client()

    # Today's answer to the owner, kept: the identity has an account.
    response = owner.post("/api/v1/residents", json=registration(id_number=squatted["id_number"], phone=owners_phone))
    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "identity_taken")

    result = reassign(runner, squatted["id_number"], owners_phone)
    assert result.exit_code == 0, result.output

    # The squatter's session is over, their code is revoked, and no code is issued to them.
    response = squatter_client.get("/api/v1/code")
    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "not_authenticated")
    key = add_scanner(runner)[1]
    decision = verify(owner, key, squatters_token)
    assert (decision["ok"], decision["code"]) == (False, "revoked")
    revoked = claims_of(owner.get("/api/v1/revocations").get_data(as_text=True))["revoked"]
    assert claims_of(squatters_token)["sub"] in revoked
    if log_in(squatter_client, squatted["phone"], DEMO_PASSWORD).status_code == 200:
        response = squatter_client.get("/api/v1/code")
        assert (response.status_code, response.get_json()["error"]["code"]) == (403, "code_revoked")

    # The owner logs in with their phone and the password they typed at the desk.
    response = log_in(owner, owners_phone, OWNERS_PASSWORD)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["resident"] == {"name_masked": "李*", "category": None, "id_type": "resident_id"}
    owners_token = owner.get("/api/v1/code").get_json()["token"]
    assert claims_of(owners_token)["sub"] != claims_of(squatters_token)["sub"]
    assert verify(owner, key, owners_token)["code"] == "accepted"

    # Squatting it again is refused: the identity is the owner's account's now.
    again = registration(id_number=squatted["id_number"])
    response = squatter_client.post("/api/v1/residents", json=again)
    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "identity_taken")


def test_a_squatter_who_also_took_the_owners_phone(app: Any, runner: Any, owners_phone: str) -> None:
    squatter_client = app.test_client()
    squatted = registration(phone=owners_phone)
    assert squatter_client.post("/api/v1/residents", json=squatted).status_code == 201
    assert log_in(squatter_client, owners_phone, DEMO_PASSWORD).status_code == 200

    result = reassign(runner, squatted["id_number"], owners_phone)
    assert result.exit_code == 0, result.output

    assert squatter_client.get("/api/v1/code").status_code == 401
    assert log_in(squatter_client, owners_phone, DEMO_PASSWORD).get_json()["error"]["code"] == "bad_credentials"
    owner = app.test_client()
    assert log_in(owner, owners_phone, OWNERS_PASSWORD).status_code == 200
    assert owner.get("/api/v1/code").status_code == 200


def test_any_document_type(app: Any, runner: Any, client: Any, owners_phone: str) -> None:
    squatted = registration(id_type="passport", id_number="E12345678")
    assert client.post("/api/v1/residents", json=squatted).status_code == 201
    result = reassign(runner, "e1234 5678", owners_phone, "--id-type", "passport")
    assert result.exit_code == 0, result.output
    response = log_in(client, owners_phone, OWNERS_PASSWORD)
    assert response.get_json()["resident"]["id_type"] == "passport"


def test_the_audit_line_names_the_staff_and_holds_no_id_number(
    runner: Any, squatter: tuple[Any, dict[str, Any]], owners_phone: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")  # SQL and its parameters too
    _client, squatted = squatter
    result = reassign(runner, squatted["id_number"], owners_phone)
    assert result.exit_code == 0, result.output

    audit = [record for record in caplog.records if record.name == "codeservice.audit"]
    assert len(audit) == 1
    line = audit[0].getMessage()
    assert STAFF in line and "reassigned" in line
    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    for secret in (squatted["id_number"], squatted["phone"], owners_phone, OWNERS_PASSWORD, "李四"):
        assert secret not in logged
        assert secret not in result.output  # the command shows the phones masked, never the ID number
    assert owners_phone[-4:] in result.output and STAFF in result.output


# -- what the command refuses -----------------------------------------------------------


def assert_refused(result: Any, message: str) -> None:
    assert result.exit_code == 1, result.output
    last_line = result.output.strip().splitlines()[-1]  # after the password prompts
    assert last_line.startswith("Error: ") and message in last_line
    assert "Traceback" not in result.output


def test_an_unknown_id_number(runner: Any, resident: dict[str, Any], owners_phone: str) -> None:
    result = reassign(runner, gb11643_id("11010519491231002"), owners_phone)
    assert_refused(result, "no resident has this identity document")


@pytest.mark.parametrize(
    ("id_number", "message"),
    [
        (gb11643_id("11010519491231002")[:-1] + "0", "check digit"),
        ("12345", "17 digits and a check digit"),
    ],
)
def test_a_malformed_id_number(runner: Any, resident: dict[str, Any], id_number: str, message: str) -> None:
    assert_refused(reassign(runner, id_number, resident["phone"]), message)


def test_an_unknown_id_type(runner: Any, resident: dict[str, Any]) -> None:
    result = reassign(runner, resident["id_number"], resident["phone"], "--id-type", "visa")
    assert result.exit_code == 2  # a usage error
    assert "Traceback" not in result.output


def test_a_malformed_phone(runner: Any, resident: dict[str, Any]) -> None:
    assert_refused(reassign(runner, resident["id_number"], "12345"), "mainland mobile number")


def test_a_phone_another_account_holds(
    runner: Any, squatter: tuple[Any, dict[str, Any]], resident: dict[str, Any]
) -> None:
    squatter_client, squatted = squatter
    result = reassign(runner, squatted["id_number"], resident["phone"])
    assert_refused(result, "already has an account")
    assert squatter_client.get("/api/v1/code").status_code == 200  # nothing changed


def test_a_weak_password(runner: Any, squatter: tuple[Any, dict[str, Any]], owners_phone: str) -> None:
    squatter_client, squatted = squatter
    result = reassign(runner, squatted["id_number"], owners_phone, password=owners_phone + "x")
    assert_refused(result, "must not contain the phone number")
    assert squatter_client.get("/api/v1/code").status_code == 200


def test_the_staff_member_is_required(runner: Any, squatter: tuple[Any, dict[str, Any]], owners_phone: str) -> None:
    _client, squatted = squatter
    args = ["residents", "reassign", "--id-number", squatted["id_number"], "--phone", owners_phone, "--name", "李四"]
    result = runner.invoke(args=args, input=f"{OWNERS_PASSWORD}\n{OWNERS_PASSWORD}\n")
    assert result.exit_code == 2 and "--staff" in result.output
    assert_refused(reassign(runner, squatted["id_number"], owners_phone, "--staff", " \n"), "staff")


# -- the plain function ------------------------------------------------------------------


def test_reassign_as_a_function(app: Any, squatter: tuple[Any, dict[str, Any]], owners_phone: str) -> None:
    from codeservice.errors import IdentityNotFound, PhoneTaken

    _client, squatted = squatter
    with app.app_context():
        session, keys = db.session(), data_keys()
        now = datetime.now(UTC)
        fields = {"id_type": "resident_id", "name": "李四", "password": OWNERS_PASSWORD, "staff": STAFF}
        with pytest.raises(IdentityNotFound):
            residents.reassign(session, keys, id_number=gb11643_id("11010519491231002"), phone=owners_phone,
                               now=now, **fields)
        with pytest.raises(PhoneTaken):
            residents.reassign(session, keys, id_number=squatted["id_number"], phone=registration_phone(app),
                               now=now, **fields)
        outcome = residents.reassign(session, keys, id_number=squatted["id_number"], phone=owners_phone,
                                     now=now, **fields)
        assert outcome.closed.revoked_at is not None and outcome.closed.code_id != outcome.opened.code_id
        assert outcome.closed.birth_date is None  # the owner's birth date stays with the owner
        assert residents.find_by_phone(session, keys, owners_phone) == outcome.opened
        assert outcome.opened.birth_date is not None


def registration_phone(app: Any) -> str:
    """The phone of a new account registered through the API."""
    body = registration()
    assert app.test_client().post("/api/v1/residents", json=body).status_code == 201
    return body["phone"]
