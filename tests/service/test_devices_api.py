"""Device enrolment and credentials (contract sections 4 and 9), end to end through the API.

Each test runs on SQLite and on PostgreSQL (the ``app`` fixture). A phone is
a P-256 key made here with cryptography; its public JWK is sent as WebCrypto
exports it (with ``ext`` and ``key_ops``). The credential the service
answers is checked as section 9 says: by pycose (an independent COSE
implementation) against the served JWKS, claim by claim, and by the library
inside device codes the phone signs, through ``POST /api/v1/verify`` and the
signed revocation list.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from helpers import (
    ISSUER,
    add_scanner,
    code_of,
    error,
    gb11643_id,
    registration,
    response_schema,
    sub_of,
    validate,
)

from codeservice import MAX_BODY_BYTES, create_app, db, revocation
from codeservice.config import load_config
from codeservice.errors import ConfigError
from codeservice.keystore import KeyStore
from codeservice.models import Credential, Device
from codeservice.openapi import openapi_document
from verifiers import KeySet, cbor
from verifiers.cose import p256_key_from_cose, parse_sign1
from verifiers.jose import b64url_decode, b64url_encode
from verifiers.offline_codes import device_code
from verifiers.revocations import verify_revocation_list

DEVICES = "/api/v1/devices"
MY_DEVICES = "/api/v1/me/devices"
VERIFY = "/api/v1/verify"
DAY = 86400
P256_PRIME = 2**256 - 2**224 + 2**192 + 2**96 - 1


class Phone:
    """A phone's P-256 key: its public JWK as WebCrypto exports it, and its r||s signer."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.private_key.public_key().public_numbers()
        self.x, self.y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")

    def jwk(self, **changes: Any) -> dict[str, Any]:
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(self.x),
            "y": b64url_encode(self.y),
            "ext": True,
            "key_ops": ["verify"],
        }
        jwk.update(changes)
        return {name: value for name, value in jwk.items() if value is not None}

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.private_key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def code(self, credential: bytes, t: int | None = None) -> str:
        return device_code(credential, int(time.time()) if t is None else t, self.sign)


def enrol(client: Any, phone: Phone) -> dict[str, Any]:
    response = client.post(DEVICES, json={"public_key": phone.jwk()})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def refresh(client: Any, device_id: str, **request: Any) -> Any:
    return client.post(f"{DEVICES}/{device_id}/credential", **request)


def credential_of(answer: dict[str, Any]) -> bytes:
    return b64url_decode(answer["credential"])


def claims_of(credential: bytes) -> dict[Any, Any]:
    return cbor.loads(parse_sign1(credential).payload)


def cti_of(credential: bytes) -> str:
    return b64url_encode(claims_of(credential)[7])


def served_jwks(client: Any) -> dict[str, Any]:
    return client.get("/.well-known/jwks.json").get_json()


def revocation_list(client: Any) -> Any:
    jws = client.get("/api/v1/revocations").get_data(as_text=True)
    return verify_revocation_list(jws, KeySet.from_jwks(served_jwks(client)), ISSUER, time.time())


def verify(client: Any, key: str, token: str, department: str = "内科") -> dict[str, Any]:
    response = client.post(
        VERIFY,
        json={"token": token, "scene": "clinic", "context": {"department": department}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def log_in_as(client: Any, body: dict[str, Any]) -> None:
    assert client.post("/api/v1/residents", json=body).status_code == 201
    response = client.post("/api/v1/session", json={"phone": body["phone"], "password": body["password"]})
    assert response.status_code == 200, response.get_json()


@pytest.fixture
def phone() -> Phone:
    return Phone()


# -- enrolment -------------------------------------------------------------------------------


def test_enrolment_gives_a_credential_that_pycose_verifies_with_the_served_keys(
    app: Any, logged_in: Any, phone: Phone
) -> None:
    from pycose.keys import CoseKey
    from pycose.messages import Sign1Message

    before = int(time.time())
    response = logged_in.post(DEVICES, json={"public_key": phone.jwk()})

    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    answer = response.get_json()
    assert set(answer) == {"device_id", "credential", "expires_at", "server_time"}
    assert len(answer["device_id"]) == 16 and b64url_decode(answer["device_id"])
    assert "=" not in answer["credential"]
    credential = credential_of(answer)
    message = Sign1Message.decode(credential)
    (jwk,) = served_jwks(logged_in)["keys"]
    public_key = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    message.key = CoseKey.from_pem_public_key(pem.decode("ascii"))
    assert message.verify_signature()
    sign1 = parse_sign1(credential)
    assert sign1.protected == {1: -8, 4: b64url_decode(jwk["kid"])} and cbor.loads(credential).value[1] == {}

    claims = claims_of(credential)
    assert claims[1] == ISSUER
    assert claims[2] == sub_of(code_of(logged_in))
    assert before <= claims[6] == answer["server_time"] <= time.time()
    assert claims[4] == answer["expires_at"] == claims[6] + DAY
    assert type(claims[7]) is bytes and len(claims[7]) == 8
    assert claims[8] == {1: {1: 2, -1: 1, -2: phone.x, -3: bool(phone.y[-1] & 1)}}
    assert p256_key_from_cose(claims[8][1]).public_numbers() == phone.private_key.public_key().public_numbers()
    assert claims["use"] == "device"
    assert claims["scp"] == list(app.config["ISSUED_SCOPES"])
    assert "cat" not in claims and "hint" not in claims  # a resident of no concession category
    assert set(claims) == {1, 2, 4, 6, 7, 8, "use", "scp"}

    with app.app_context():
        device = db.session().get(Device, answer["device_id"])
        assert device is not None and device.withdrawn_at is None
        assert device.public_key == {name: phone.jwk()[name] for name in ("kty", "crv", "x", "y")}
        stored = db.session().get(Credential, cti_of(credential))
        assert stored is not None
        assert (stored.use, stored.device_id, stored.revoked_at) == ("device", device.id, None)
        assert stored.resident_id == device.resident_id


def test_a_senior_credential_carries_the_category_the_jws_code_gets(client: Any, phone: Phone) -> None:
    log_in_as(client, registration(id_number=gb11643_id("31010419500101123")))  # born 1950
    credential = credential_of(enrol(client, phone))
    token = code_of(client)
    assert claims_of(credential)["cat"] == json.loads(b64url_decode(token.split(".")[1]))["cat"] == "senior"


def test_the_credential_lives_as_configured(app: Any, app_config: dict[str, Any], phone: Phone) -> None:
    configured = create_app({**app_config, "DEVICE_CREDENTIAL_TTL": 2 * DAY})  # on the app fixture's database
    configured.testing = True
    client = configured.test_client()
    log_in_as(client, registration())
    answer = enrol(client, phone)
    claims = claims_of(credential_of(answer))
    assert claims[4] - claims[6] == answer["expires_at"] - answer["server_time"] == 2 * DAY
    with configured.app_context():
        db.engine().dispose()


@pytest.mark.parametrize("ttl", [0, -1, 259201, 10**9, "86400"])
def test_a_credential_lifetime_beyond_72_hours_is_refused_at_load(ttl: Any) -> None:
    with pytest.raises(ConfigError, match="DEVICE_CREDENTIAL_TTL"):
        load_config({"DEVICE_CREDENTIAL_TTL": ttl}, environ={})


def test_the_lifetime_and_device_limit_from_the_environment() -> None:
    config = load_config(
        None, environ={"CODESERVICE_DEVICE_CREDENTIAL_TTL": "259200", "CODESERVICE_DEVICES_PER_RESIDENT": "3"}
    )
    assert (config["DEVICE_CREDENTIAL_TTL"], config["DEVICES_PER_RESIDENT"]) == (259200, 3)
    assert load_config(None, environ={})["DEVICE_CREDENTIAL_TTL"] == DAY
    with pytest.raises(ConfigError, match="DEVICES_PER_RESIDENT"):
        load_config({"DEVICES_PER_RESIDENT": 0}, environ={})


# -- refresh, list, withdraw -----------------------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"data": b""}, {"json": {}}, {"json": {"anything": 1}}])
def test_refresh_gives_a_fresh_credential_for_the_same_device(logged_in: Any, phone: Phone, body: Any) -> None:
    first = enrol(logged_in, phone)

    response = refresh(logged_in, first["device_id"], **body)

    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    second = response.get_json()
    assert set(second) == {"device_id", "credential", "expires_at", "server_time"}
    assert second["device_id"] == first["device_id"]
    old, new = claims_of(credential_of(first)), claims_of(credential_of(second))
    assert new[7] != old[7]
    assert (new[2], new[8]) == (old[2], old[8])


@pytest.mark.parametrize(
    ("request_", "status", "code"),
    [
        ({"data": b"[]", "content_type": "application/json"}, 400, "invalid_json"),
        ({"data": b"{", "content_type": "application/json"}, 400, "invalid_json"),
        ({"data": b"{}", "content_type": "text/plain"}, 415, "unsupported_media_type"),
        ({"data": b"{" + b" " * MAX_BODY_BYTES + b"}", "content_type": "application/json"}, 413, "body_too_large"),
    ],
)
def test_a_refresh_with_a_body_that_is_not_a_json_object(
    logged_in: Any, phone: Phone, request_: dict[str, Any], status: int, code: str
) -> None:
    device_id = enrol(logged_in, phone)["device_id"]
    error(refresh(logged_in, device_id, **request_), status, code)


def test_my_devices_lists_active_and_withdrawn(logged_in: Any) -> None:
    assert logged_in.get(MY_DEVICES).get_json() == {"devices": []}
    before = int(time.time())
    first = enrol(logged_in, Phone())["device_id"]
    second = enrol(logged_in, Phone())["device_id"]  # the limit is 1: the first is withdrawn

    response = logged_in.get(MY_DEVICES)

    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    listed = response.get_json()["devices"]
    assert [(d["device_id"], d["active"]) for d in listed] == [(first, False), (second, True)]
    assert all(
        before <= d["created_at"] <= time.time() and set(d) == {"device_id", "created_at", "active"} for d in listed
    )


def test_withdrawing_a_device_lists_its_credentials_as_revoked(logged_in: Any, phone: Phone) -> None:
    answer = enrol(logged_in, phone)
    renewed = refresh(logged_in, answer["device_id"]).get_json()
    ctis = {cti_of(credential_of(answer)), cti_of(credential_of(renewed))}
    before = logged_in.get("/api/v1/revocations")
    assert revocation_list(logged_in).credentials == frozenset()

    response = logged_in.delete(f"{MY_DEVICES}/{answer['device_id']}")

    assert response.status_code == 204 and response.data == b""
    assert "Content-Type" not in response.headers
    listed = revocation_list(logged_in)
    assert listed.credentials == ctis
    assert listed.subs == frozenset()  # the resident is not revoked, only the device's credentials
    after = logged_in.get("/api/v1/revocations", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    assert logged_in.get(MY_DEVICES).get_json()["devices"][0]["active"] is False
    error(refresh(logged_in, answer["device_id"]), 404, "device_not_found")
    error(logged_in.delete(f"{MY_DEVICES}/{answer['device_id']}"), 404, "device_not_found")


def test_the_answers_match_the_documented_schemas(app: Any, logged_in: Any, phone: Phone) -> None:
    document = openapi_document(app)
    enrolled = logged_in.post(DEVICES, json={"public_key": phone.jwk()})
    device_id = enrolled.get_json()["device_id"]
    answers = [
        ("/api/v1/devices", "post", enrolled),
        ("/api/v1/devices/{device_id}/credential", "post", refresh(logged_in, device_id)),
        ("/api/v1/me/devices", "get", logged_in.get(MY_DEVICES)),
        ("/api/v1/devices", "post", logged_in.post(DEVICES, json={"public_key": phone.jwk(d="AA")})),
        ("/api/v1/devices/{device_id}/credential", "post", refresh(logged_in, "AAAAAAAAAAAAAAAA")),
    ]
    for path, method, response in answers:
        schema = response_schema(document, path, method, response.status_code)
        assert validate(document, schema, response.get_json()) == [], (path, response.status_code)
    withdrawn = logged_in.delete(f"{MY_DEVICES}/{device_id}")
    assert "204" in document["paths"]["/api/v1/me/devices/{device_id}"]["delete"]["responses"]
    assert withdrawn.status_code == 204


def test_enrolling_beyond_the_limit_withdraws_the_oldest(logged_in: Any) -> None:
    oldest = enrol(logged_in, Phone())

    newest = enrol(logged_in, Phone())

    assert revocation_list(logged_in).credentials == {cti_of(credential_of(oldest))}
    error(refresh(logged_in, oldest["device_id"]), 404, "device_not_found")
    assert refresh(logged_in, newest["device_id"]).status_code == 200


def test_a_limit_of_two_keeps_two_phones(app: Any, app_config: dict[str, Any]) -> None:
    configured = create_app({**app_config, "DEVICES_PER_RESIDENT": 2})  # on the app fixture's database
    configured.testing = True
    client = configured.test_client()
    log_in_as(client, registration())
    first, second, third = (enrol(client, Phone()) for _ in range(3))

    listed = client.get(MY_DEVICES).get_json()["devices"]

    assert [(d["device_id"], d["active"]) for d in listed] == [
        (first["device_id"], False),
        (second["device_id"], True),
        (third["device_id"], True),
    ]
    assert revocation_list(client).credentials == {cti_of(credential_of(first))}
    with configured.app_context():
        db.engine().dispose()


def test_the_list_names_a_credential_until_a_day_after_it_expires(app: Any, logged_in: Any, phone: Phone) -> None:
    answer = enrol(logged_in, phone)
    logged_in.delete(f"{MY_DEVICES}/{answer['device_id']}")
    cti = cti_of(credential_of(answer))
    now = datetime.now(UTC)

    def expiring(at: datetime) -> Any:
        with app.app_context():
            session = db.session()
            session.get(Credential, cti).expires_at = at
            session.commit()
        return revocation_list(logged_in)

    assert cti in expiring(now - timedelta(hours=23)).credentials
    assert expiring(now - timedelta(hours=25)).credentials == frozenset()
    with app.app_context():
        listed = revocation.revoked_credentials(db.session(), now)
    # The list took this form when the credential left it, a day after it expired.
    assert listed == revocation.Revoked([], int((now - timedelta(hours=1)).timestamp()))


def test_a_withdrawal_revokes_only_unexpired_credentials(app: Any, logged_in: Any, phone: Phone) -> None:
    answer = enrol(logged_in, phone)
    cti = cti_of(credential_of(answer))
    with app.app_context():
        session = db.session()
        session.get(Credential, cti).expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.commit()
    logged_in.delete(f"{MY_DEVICES}/{answer['device_id']}")
    with app.app_context():
        assert db.session().get(Credential, cti).revoked_at is None


# -- a revoked resident ----------------------------------------------------------------------


def test_a_revoked_resident_gets_what_the_code_endpoint_gives(
    app: Any, logged_in: Any, runner: Any, resident: dict[str, Any], phone: Phone
) -> None:
    device_id = enrol(logged_in, phone)["device_id"]
    result = runner.invoke(args=["residents", "revoke", "--phone", resident["phone"]])
    assert result.exit_code == 0, result.output
    code = logged_in.get("/api/v1/code")

    for response in (logged_in.post(DEVICES, json={"public_key": Phone().jwk()}), refresh(logged_in, device_id)):
        assert (response.status_code, response.get_json()) == (code.status_code, code.get_json())
        error(response, 403, "code_revoked")
    with app.app_context():
        assert db.session().query(Credential).count() == 1  # none more issued


# -- attacks ---------------------------------------------------------------------------------

P384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
ED25519_X = b64url_encode(
    Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
)
OFF_CURVE_Y = b64url_encode((5).to_bytes(32, "big"))


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"d": b64url_encode(b"\x01" * 32)}, "private member 'd'"),
        (
            {
                "crv": "P-384",
                "x": b64url_encode(P384.x.to_bytes(48, "big")),
                "y": b64url_encode(P384.y.to_bytes(48, "big")),
            },
            "P-384",
        ),
        ({"kty": "OKP", "crv": "Ed25519", "x": ED25519_X, "y": None}, "'y'"),
        ({"kty": "OKP", "crv": "Ed25519", "x": ED25519_X}, "OKP Ed25519"),
        ({"kty": "RSA"}, "RSA"),
        ({"y": OFF_CURVE_Y}, "not a point on P-256"),
        ({"x": b64url_encode(P256_PRIME.to_bytes(32, "big"))}, "not a point on P-256"),
        ({"x": b64url_encode(b"\x01" * 31)}, "32 bytes, not 31"),
        ({"y": b64url_encode(b"\x01" * 33)}, "32 bytes, not 33"),
        ({"x": "not base64url!"}, "not unpadded base64url"),
        ({"x": b64url_encode(b"\x01" * 32) + "="}, "not unpadded base64url"),
        ({"kty": None}, "'kty'"),
        ({"crv": None}, "'crv'"),
        ({"x": None}, "'x'"),
        ({"y": None}, "'y'"),
        ({"x": 12345}, "'x'"),
    ],
    ids=[
        "private_d",
        "p384",
        "ed25519_without_y",
        "ed25519",
        "rsa",
        "off_curve",
        "x_is_the_prime",
        "x_31_bytes",
        "y_33_bytes",
        "x_not_base64url",
        "x_padded",
        "no_kty",
        "no_crv",
        "no_x",
        "no_y",
        "x_a_number",
    ],
)
def test_a_public_key_that_will_not_do(
    app: Any, logged_in: Any, phone: Phone, changes: dict[str, Any], says: str
) -> None:
    body = error(logged_in.post(DEVICES, json={"public_key": phone.jwk(**changes)}), 400, "invalid_public_key")
    assert says in body["message"]
    with app.app_context():
        assert db.session().query(Device).count() == 0
        assert db.session().query(Credential).count() == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"public_key": "a JWK as a string"}, 400, "wrong_type"),
        ({"public_key": ["EC", "P-256"]}, 400, "wrong_type"),
        ({"public_key": None}, 400, "missing_field"),
        ({}, 400, "missing_field"),
        ("a string", 400, "invalid_json"),
    ],
)
def test_an_enrolment_body_that_will_not_do(logged_in: Any, body: Any, status: int, code: str) -> None:
    error(logged_in.post(DEVICES, json=body), status, code)


def test_a_huge_enrolment_body_is_413(logged_in: Any, phone: Phone) -> None:
    jwk = phone.jwk(padding="x" * MAX_BODY_BYTES)
    error(logged_in.post(DEVICES, json={"public_key": jwk}), 413, "body_too_large")


def test_another_residents_device_is_not_found(client: Any, phone: Phone) -> None:
    log_in_as(client, registration())
    theirs = enrol(client, phone)["device_id"]
    log_in_as(client, registration())

    error(refresh(client, theirs), 404, "device_not_found")
    error(client.delete(f"{MY_DEVICES}/{theirs}"), 404, "device_not_found")
    assert client.get(MY_DEVICES).get_json() == {"devices": []}


@pytest.mark.parametrize(
    "device_id",
    ["AAAAAAAAAAAAAAAA", "x" * 300, "%00", "AAAAAAAAAAAAAAA%00", "..", "a'; DROP TABLE devices; --", "é" * 16],
)
def test_an_unknown_device_is_not_found(logged_in: Any, device_id: str) -> None:
    error(refresh(logged_in, device_id), 404, "device_not_found")
    error(logged_in.delete(f"{MY_DEVICES}/{device_id}"), 404, "device_not_found")


def test_the_device_endpoints_want_a_session(client: Any) -> None:
    error(client.post(DEVICES, json={"public_key": Phone().jwk()}), 401, "not_authenticated")
    error(refresh(client, "AAAAAAAAAAAAAAAA"), 401, "not_authenticated")
    error(client.get(MY_DEVICES), 401, "not_authenticated")
    error(client.delete(f"{MY_DEVICES}/AAAAAAAAAAAAAAAA"), 401, "not_authenticated")


# -- device codes at the verify endpoint -----------------------------------------------------


def test_a_device_code_is_accepted_once_then_replayed_then_revoked_after_withdrawal(
    app: Any, logged_in: Any, runner: Any, phone: Phone
) -> None:
    key = add_scanner(runner)[1]
    answer = enrol(logged_in, phone)
    credential = credential_of(answer)
    t = int(time.time())
    code = phone.code(credential, t)

    decision = verify(logged_in, key, code)
    assert (decision["ok"], decision["code"], decision["form"]) == (True, "accepted", "device")
    assert decision["jti"] == f"{cti_of(credential)}-{t}"
    assert decision["sub"] == claims_of(credential)[2]

    assert verify(logged_in, key, code)["code"] == "replayed"

    logged_in.delete(f"{MY_DEVICES}/{answer['device_id']}")
    revoked = verify(logged_in, key, phone.code(credential, t + 1))
    assert (revoked["ok"], revoked["code"], revoked["form"]) == (False, "revoked", "device")


def test_a_device_code_signed_by_another_key_is_refused(logged_in: Any, runner: Any, phone: Phone) -> None:
    key = add_scanner(runner)[1]
    credential = credential_of(enrol(logged_in, phone))
    decision = verify(logged_in, key, Phone().code(credential))
    assert (decision["ok"], decision["code"], decision["form"]) == (False, "bad_signature", "device")


def test_the_credentials_kid_follows_key_rotation(
    app: Any, logged_in: Any, runner: Any, keys_dir: Any, phone: Phone
) -> None:
    key = add_scanner(runner)[1]
    answer = enrol(logged_in, phone)
    old_kid = b64url_encode(parse_sign1(credential_of(answer)).protected[4])

    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    new_kid = KeyStore(keys_dir).signer().kid
    renewed = credential_of(refresh(logged_in, answer["device_id"]).get_json())

    assert new_kid != old_kid
    assert b64url_encode(parse_sign1(renewed).protected[4]) == new_kid
    # The old key stays published: the credential it signed still makes valid codes.
    assert {k["kid"] for k in served_jwks(logged_in)["keys"]} == {old_kid, new_kid}
    assert verify(logged_in, key, phone.code(credential_of(answer)))["code"] == "accepted"
    assert verify(logged_in, key, phone.code(renewed), department="外科")["code"] == "accepted"
