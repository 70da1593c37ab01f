"""Paper codes (contract sections 6 and 9): ``residents paper``, staffed scanners, the card read back, the endpoint.

The whole path from the card: the command issues a paper code and writes its
card; ``pdftoppm`` rasterises the card, zxing-cpp decodes its QR to the
command's last line; the library accepts that text at a staffed scanner with
the service's JWKS, and so does ``POST /api/v1/verify`` with a key added
``--attended``; an unstaffed one answers ``attendant_required`` whatever the
request says.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    add_scanner,
    decoded_texts,
    gb11643_id,
    poppler,
    rasterise,
    registration,
)
from offline_minting import DeviceKey, credential_claims
from PIL import Image
from sqlalchemy import select

from codeservice import db, paper_card
from codeservice.keystore import KeyStore
from codeservice.models import Credential, Resident, UsageRecord
from codeservice.paper_card import FontNotFound
from verifiers import KeySet, OfflineVerifier
from verifiers.jose import b64url_decode, b64url_encode
from verifiers.offline_codes import mint_credential, paper_code, parse_offline_code

VENUE: dict[str, Any] = {}
ENTRY = {"station": "人民广场", "direction": "in", "line": "1"}
EXIT = {"station": "陆家嘴", "direction": "out", "line": "2"}
CLINIC = {"department": "内科"}
# Born 21 May 1950: the hint's "b" is 0521.
BIRTH_ID = gb11643_id("31010419500521123")


# -- helpers ------------------------------------------------------------------------


def issue(runner: Any, phone: str, out: Path, *extra: str) -> Any:
    return runner.invoke(args=["residents", "paper", "--phone", phone, "--out", str(out), *extra])


def issued_code(runner: Any, phone: str, out: Path, *extra: str) -> str:
    """``residents paper``'s last line: the code's text."""
    result = issue(runner, phone, out, *extra)
    assert result.exit_code == 0, result.output
    text = result.output.strip().splitlines()[-1]
    assert text.startswith("RSP1:"), result.output
    return text


def claims_of(text: str) -> dict[Any, Any]:
    return parse_offline_code(text).claims


def cti_of(text: str) -> str:
    return b64url_encode(claims_of(text)[7])


def service_keys(client: Any) -> KeySet:
    return KeySet.from_jwks(client.get("/.well-known/jwks.json").get_json())


def verify(client: Any, key: str, token: str, scene: str, context: Any = None, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/verify",
        json={"token": token, "scene": scene, "context": context if context is not None else {}, **body},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def register(client: Any, **overrides: Any) -> dict[str, Any]:
    body = registration(**overrides)
    response = client.post("/api/v1/residents", json=body)
    assert response.status_code == 201, response.get_json()
    return body


@pytest.fixture
def holder(client: Any) -> dict[str, Any]:
    """A resident ID holder born on 21 May 1950, named 张三明."""
    return register(client, id_number=BIRTH_ID)


@pytest.fixture
def code(runner: Any, holder: dict[str, Any], tmp_path: Path) -> str:
    return issued_code(runner, holder["phone"], tmp_path / "card.pdf")


@pytest.fixture
def desk_key(runner: Any) -> str:
    """A staffed scanner's key (``--attended``): venue ``desk-1``, every scene."""
    result = runner.invoke(
        args=[
            "scanners", "add", "--venue", "desk-1", "--device", "desk", "--scenes", "clinic,transit,venue", "--attended"
        ]
    )
    assert result.exit_code == 0, result.output
    assert "staffed" in result.output
    return result.output.strip().splitlines()[-1]


@pytest.fixture
def gate_key(runner: Any) -> str:
    """An unstaffed scanner's key: venue ``gate-1``, every scene."""
    return add_scanner(runner, venue="gate-1", device="gate")[1]


# -- issuing ------------------------------------------------------------------------


def test_the_cards_qr_is_the_commands_last_line_and_verifies_at_a_staffed_scanner(
    runner: Any, client: Any, holder: dict[str, Any], tmp_path: Path
) -> None:
    card = tmp_path / "card.pdf"
    text = issued_code(runner, holder["phone"], card)
    assert decoded_texts(rasterise(card, 300)) == [text]
    keys = service_keys(client)
    decision = OfflineVerifier(keys, issuer="urn:codeservice:dev", venue_id="desk", attended=True).verify(
        text, "venue", VENUE
    )
    assert (decision.ok, decision.code, decision.form) == (True, "accepted", "paper")
    assert decision.to_dict()["check_id"] == {"n": "张*明", "b": "0521", "i": BIRTH_ID[-4:]}
    unstaffed = OfflineVerifier(keys, issuer="urn:codeservice:dev", venue_id="gate").verify(text, "venue", VENUE)
    assert (unstaffed.ok, unstaffed.code, unstaffed.to_dict()["check_id"]) == (False, "attendant_required", None)


@pytest.mark.parametrize(("dpi", "degrees"), [(150, 0), (300, 3), (150, -3)])
def test_the_issued_card_decodes_at_150_dpi_and_tilted(
    runner: Any, holder: dict[str, Any], tmp_path: Path, dpi: int, degrees: int
) -> None:
    card = tmp_path / "card.pdf"
    text = issued_code(runner, holder["phone"], card)
    image = rasterise(card, dpi).rotate(degrees, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=255)
    assert decoded_texts(image) == [text]


def test_the_credential_is_section_9s_paper_credential(app: Any, code: str, holder: dict[str, Any]) -> None:
    claims = claims_of(code)
    with app.app_context():
        resident = db.session().scalar(select(Resident).where(Resident.name == "张*明"))
        assert resident is not None
        row = db.session().get(Credential, cti_of(code))
    assert claims.keys() == {1, 2, 4, 6, 7, "use", "scp", "cat", "hint"}  # cat: senior, born 1950
    expected = (app.config["ISSUER"], resident.code_id, "paper", "senior")
    assert (claims[1], claims[2], claims["use"], claims["cat"]) == expected
    assert claims[4] - claims[6] == 30 * 86400
    assert abs(claims[6] - time.time()) < 60
    assert len(claims[7]) == 8
    assert claims["scp"] == list(app.config["ISSUED_SCOPES"])
    assert row is not None
    assert (row.use, row.device_id, row.revoked_at, row.resident_id) == ("paper", None, None, resident.id)


def test_the_hint_holds_the_masked_name_birth_day_and_id_tail_and_nothing_more(code: str) -> None:
    assert claims_of(code)["hint"] == {"n": "张*明", "b": "0521", "i": BIRTH_ID[-4:]}


def test_a_passport_holders_hint_has_no_birth_day(runner: Any, client: Any, tmp_path: Path) -> None:
    body = register(client, id_type="passport", id_number="E12345678", name="John Smith")
    text = issued_code(runner, body["phone"], tmp_path / "card.pdf")
    assert claims_of(text)["hint"] == {"n": "J*** S****", "i": "5678"}


@pytest.mark.parametrize("days", ["1", "180"])
def test_days_sets_the_lifetime(runner: Any, holder: dict[str, Any], tmp_path: Path, days: str) -> None:
    claims = claims_of(issued_code(runner, holder["phone"], tmp_path / "card.pdf", "--days", days))
    assert claims[4] - claims[6] == int(days) * 86400


@pytest.mark.parametrize("days", ["0", "181", "-1", "30.5", "thirty", ""])
def test_days_outside_1_to_180_is_a_usage_error(runner: Any, holder: dict[str, Any], tmp_path: Path, days: str) -> None:
    card = tmp_path / "card.pdf"
    result = issue(runner, holder["phone"], card, "--days", days)
    assert result.exit_code == 2, result.output
    assert "--days" in result.output and "Traceback" not in result.output
    assert not card.exists()


def test_an_unknown_phone_is_a_clear_error(runner: Any, app: Any, tmp_path: Path) -> None:
    card = tmp_path / "card.pdf"
    result = issue(runner, "13900000000", card)
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no resident has this phone number"
    assert not card.exists()
    bad = issue(runner, "not a phone", card)
    assert bad.exit_code == 1 and bad.output.startswith("Error: ") and bad.output.count("\n") == 1, bad.output
    with app.app_context():
        assert db.session().scalar(select(Credential)) is None


def test_a_revoked_resident_gets_no_card(runner: Any, app: Any, holder: dict[str, Any], tmp_path: Path) -> None:
    assert runner.invoke(args=["residents", "revoke", "--phone", holder["phone"]]).exit_code == 0
    card = tmp_path / "card.pdf"
    result = issue(runner, holder["phone"], card)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "revoked" in result.output and result.output.count("\n") == 1
    assert not card.exists()
    with app.app_context():
        assert db.session().scalar(select(Credential)) is None


def test_no_font_is_one_line_and_issues_nothing(
    runner: Any, app: Any, holder: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_font() -> None:
        raise FontNotFound()

    monkeypatch.setattr(paper_card, "find_fonts", no_font)
    card = tmp_path / "card.pdf"
    result = issue(runner, holder["phone"], card)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "fonts-noto-cjk" in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not card.exists()
    with app.app_context():
        assert db.session().scalar(select(Credential)) is None


def test_an_unwritable_card_path_issues_nothing(runner: Any, app: Any, holder: dict[str, Any], tmp_path: Path) -> None:
    result = issue(runner, holder["phone"], tmp_path / "no-such-directory" / "card.pdf")
    assert result.exit_code != 0 and "Traceback" not in result.output
    with app.app_context():
        assert db.session().scalar(select(Credential)) is None


def test_the_card_holds_no_full_id_number_name_or_phone(holder: dict[str, Any], code: str, tmp_path: Path) -> None:
    text = poppler("pdftotext", "-enc", "UTF-8", tmp_path / "card.pdf", "-")
    assert "张*明" in text and BIRTH_ID[-4:] in text
    for secret in (holder["id_number"], holder["name"], holder["phone"], holder["phone"][-8:], BIRTH_ID[:14]):
        assert secret not in text
        assert secret not in code


def test_the_output_and_logs_hold_no_id_number_name_or_phone(
    runner: Any, holder: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = issued_code(runner, holder["phone"], tmp_path / "first.pdf")
    result = issue(runner, holder["phone"], tmp_path / "second.pdf")
    assert result.exit_code == 0
    for secret in (holder["id_number"], holder["name"], holder["phone"], BIRTH_ID[:14]):
        assert secret not in caplog.text
        assert secret not in result.output
    audit = [r.getMessage() for r in caplog.records if r.name == "codeservice.audit"]
    second = result.output.strip().splitlines()[-1]
    assert any(cti_of(second) in line and cti_of(first) in line for line in audit), audit


# -- re-issue -----------------------------------------------------------------------


def test_issuing_another_card_revokes_the_previous_one(
    runner: Any, app: Any, client: Any, holder: dict[str, Any], tmp_path: Path, desk_key: str
) -> None:
    first = issued_code(runner, holder["phone"], tmp_path / "first.pdf")
    result = issue(runner, holder["phone"], tmp_path / "second.pdf")
    assert result.exit_code == 0
    second = result.output.strip().splitlines()[-1]
    assert f"previous paper code {cti_of(first)} is revoked" in result.output
    with app.app_context():
        old, new = db.session().get(Credential, cti_of(first)), db.session().get(Credential, cti_of(second))
        assert old is not None and new is not None
        assert old.revoked_at is not None and new.revoked_at is None
    assert verify(client, desk_key, second, "venue")["code"] == "accepted"


def test_the_previous_card_is_revoked_online_and_on_the_list(
    runner: Any, client: Any, holder: dict[str, Any], tmp_path: Path, desk_key: str
) -> None:
    first = issued_code(runner, holder["phone"], tmp_path / "first.pdf")
    issued_code(runner, holder["phone"], tmp_path / "second.pdf")
    assert verify(client, desk_key, first, "venue")["code"] == "revoked"
    token = client.get("/api/v1/revocations").get_data(as_text=True)
    payload = json.loads(b64url_decode(token.split(".")[1]))
    assert cti_of(first) in payload["credentials"]


def test_a_lost_card_is_revoked_at_the_desk(
    runner: Any, client: Any, holder: dict[str, Any], tmp_path: Path, desk_key: str
) -> None:
    text = issued_code(runner, holder["phone"], tmp_path / "card.pdf")
    result = runner.invoke(args=["residents", "paper", "--revoke", "--phone", holder["phone"]])

    assert result.exit_code == 0, result.output
    assert f"Paper code {cti_of(text)}" in result.output and holder["phone"] not in result.output
    assert verify(client, desk_key, text, "venue")["code"] == "revoked"
    again = runner.invoke(args=["residents", "paper", "--revoke", "--phone", holder["phone"]])
    assert again.exit_code == 0 and "nothing revoked" in again.output


def test_revoking_needs_a_known_phone_and_issuing_needs_out(runner: Any, holder: dict[str, Any]) -> None:
    unknown = runner.invoke(args=["residents", "paper", "--revoke", "--phone", "13900000000"])
    no_out = runner.invoke(args=["residents", "paper", "--phone", holder["phone"]])

    assert unknown.exit_code == 1 and "Traceback" not in unknown.output
    assert no_out.exit_code == 2 and "--out" in no_out.output


@pytest.mark.parametrize(
    ("language", "says"),
    [("zh-CN", "您有一张有效的纸质码（有效期至"), ("en", "You have a live paper card (Valid until")],
)
def test_the_residents_devices_page_says_a_card_is_live_until_when(
    runner: Any, client: Any, holder: dict[str, Any], tmp_path: Path, language: str, says: str
) -> None:
    """Issue 13: a resident who later gets a phone learns that the card still works, and how to end it."""
    login = {"phone": holder["phone"], "password": holder["password"]}
    assert client.post("/api/v1/session", json=login).status_code == 200
    headers = {"Accept-Language": language}
    assert 'id="paper-card"' not in client.get("/devices", headers=headers).get_data(as_text=True)

    issued_code(runner, holder["phone"], tmp_path / "card.pdf", "--days", "10")
    page = client.get("/devices", headers=headers).get_data(as_text=True)
    assert 'id="paper-card"' in page and says in page

    assert runner.invoke(args=["residents", "paper", "--revoke", "--phone", holder["phone"]]).exit_code == 0
    assert 'id="paper-card"' not in client.get("/devices", headers=headers).get_data(as_text=True)


# -- online ---------------------------------------------------------------------------


def test_a_staffed_scanner_accepts_a_paper_code_with_check_id(
    app: Any, client: Any, code: str, desk_key: str
) -> None:
    decision = verify(client, desk_key, code, "clinic", CLINIC)
    assert (decision["ok"], decision["code"], decision["form"]) == (True, "accepted", "paper")
    assert decision["check_id"] == {"n": "张*明", "b": "0521", "i": BIRTH_ID[-4:]}
    assert decision["jti"] == cti_of(code)
    with app.app_context():
        row = db.session().scalar(select(UsageRecord).where(UsageRecord.jti == cti_of(code)))
    assert row is not None
    assert (row.form, row.ok, row.venue_id) == ("paper", True, "desk-1")
    assert "check_id" not in row.detail and BIRTH_ID[-4:] not in str(row.detail)


def test_no_replay_rule_but_the_scenes_rules_hold(client: Any, code: str, desk_key: str) -> None:
    assert verify(client, desk_key, code, "transit", ENTRY)["code"] == "accepted"
    assert verify(client, desk_key, code, "transit", ENTRY)["code"] == "passback"
    exit_ = verify(client, desk_key, code, "transit", EXIT)
    assert exit_["code"] == "accepted"  # the same code again: no replay rule
    assert verify(client, desk_key, code, "venue")["code"] == "accepted"
    assert verify(client, desk_key, code, "venue")["code"] == "already_entered"


def test_the_trip_id_is_the_entry_records_id_not_the_jti(app: Any, client: Any, code: str, desk_key: str) -> None:
    entry = verify(client, desk_key, code, "transit", ENTRY)
    exit_ = verify(client, desk_key, code, "transit", EXIT)
    assert entry["detail"]["trip_id"] == exit_["detail"]["trip_id"] != entry["jti"]
    with app.app_context():
        ids = set(db.session().scalars(select(UsageRecord.id).where(UsageRecord.jti == cti_of(code))))
    assert entry["detail"]["trip_id"] in ids


@pytest.mark.parametrize(
    "body",
    [{}, {"attended": True}, {"context": {"attended": True, "staffed": True}}],
    ids=["plain", "body-claims-staffed", "context-claims-staffed"],
)
def test_an_unstaffed_scanner_answers_attendant_required(
    client: Any, code: str, gate_key: str, body: dict[str, Any]
) -> None:
    decision = verify(client, gate_key, code, "venue", **body)
    assert (decision["ok"], decision["code"], decision["form"], decision["check_id"]) == (
        False, "attendant_required", "paper", None,
    )


def test_scanners_list_shows_which_are_staffed(runner: Any, desk_key: str, gate_key: str) -> None:
    lines = runner.invoke(args=["scanners", "list"]).output.splitlines()
    assert "STAFFED" in lines[0].split()
    staffed = {line.split()[1]: line.split()[4] for line in lines[1:]}
    assert staffed == {"desk-1": "yes", "gate-1": "no"}


def test_the_residents_history_says_paper(
    runner: Any, client: Any, holder: dict[str, Any], tmp_path: Path, desk_key: str
) -> None:
    text = issued_code(runner, holder["phone"], tmp_path / "card.pdf")
    assert verify(client, desk_key, text, "venue")["ok"]
    login = {"phone": holder["phone"], "password": holder["password"]}
    assert client.post("/api/v1/session", json=login).status_code == 200
    records = client.get("/api/v1/me/usage").get_json()["records"]
    assert [(r["form"], r["code"]) for r in records] == [("paper", "accepted")]
    assert "check_id" not in records[0]
    page = client.get("/history", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Paper code" in page


# -- attacks ----------------------------------------------------------------------------


def test_a_forged_hint_resigned_by_another_key_is_bad_signature(
    client: Any, code: str, desk_key: str, ed25519_key: Any, keys_dir: Path
) -> None:
    claims = claims_of(code)
    claims["hint"] = {"n": "李*四", "b": "0101", "i": "0000"}
    service_kid = b64url_decode(KeyStore(keys_dir).signer().kid)
    forged = paper_code(mint_credential(claims, alg="EdDSA", kid=service_kid, sign=ed25519_key.sign))
    decision = verify(client, desk_key, forged, "venue")
    outcome = (decision["ok"], decision["code"], decision["check_id"], decision["sub"])
    assert outcome == (False, "bad_signature", None, None)


def test_a_device_credential_behind_rsp1_is_wrong_type(client: Any, desk_key: str, keys_dir: Path) -> None:
    signer = KeyStore(keys_dir).signer()
    claims = credential_claims("device", device=DeviceKey(), now=int(time.time()))
    credential = mint_credential(claims, alg=signer.alg, kid=b64url_decode(signer.kid), sign=signer.sign)
    decision = verify(client, desk_key, paper_code(credential), "venue")
    assert (decision["ok"], decision["code"], decision["form"]) == (False, "wrong_type", "paper")


@pytest.mark.parametrize("token", ["RSP1:", "RSP1:%%%", "RSP1:" + "A" * 5000, "rsp1:ABC"])
def test_broken_paper_codes_are_decisions_not_errors(client: Any, desk_key: str, token: str) -> None:
    decision = verify(client, desk_key, token, "venue")
    assert decision["ok"] is False and decision["code"] == "malformed"
