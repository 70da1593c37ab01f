"""Revocation: the command, the service's refusals, and the signed revocation list.

The list (``GET /api/v1/revocations``) is a compact JWS with its own ``typ``;
``verify_revocation_list`` checks it by the same strict rules as a code, and
neither is ever taken for the other.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import ISSUER, make_test_key, registration

from codeservice import revocation
from codeservice.keystore import KeyStore
from verifiers import (
    KeySet,
    OfflineVerifier,
    RevocationListError,
    verify_revocation_list,
)
from verifiers.jose import b64url_decode, b64url_encode, compact_json
from verifiers.revocations import MAX_REVOCATION_LIST_BYTES, REVOCATIONS_TYPE

ALL_SCENES = "clinic,transit,venue"


# -- helpers -------------------------------------------------------------------------


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[1]))


def header_of(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[0]))


def revoke(runner: Any, phone: str) -> Any:
    result = runner.invoke(args=["residents", "revoke", "--phone", phone])
    assert result.exit_code == 0, result.output
    return result


def scanner_key(runner: Any) -> str:
    result = runner.invoke(
        args=["scanners", "add", "--venue", "museum-1", "--device", "gate-1", "--scenes", ALL_SCENES]
    )
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def served_keys(client: Any) -> KeySet:
    return KeySet.from_jwks(client.get("/.well-known/jwks.json").get_json())


def signed_list(signer: Any, *, subs: list[str], issued_at: int, issuer: str = ISSUER) -> str:
    payload = revocation.signing_input(alg=signer.alg, kid=signer.kid, issuer=issuer, subs=subs, issued_at=issued_at)
    return revocation.sign(signer, payload)


def hand_made(key: Any, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWS over exactly these header and claims, signed by a test key."""
    signing_input = f"{b64url_encode(compact_json(header))}.{b64url_encode(compact_json(claims))}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


# -- revoking ------------------------------------------------------------------------


def test_a_revoked_resident_gets_no_code(logged_in: Any, runner: Any, resident: dict[str, Any]) -> None:
    assert logged_in.get("/api/v1/code").status_code == 200
    result = revoke(runner, resident["phone"])
    assert "is revoked since" in result.output
    assert resident["phone"] not in result.output  # masked
    for path in ("/api/v1/code", "/api/v1/code.png"):
        response = logged_in.get(path)
        assert response.status_code == 403, path
        assert response.get_json()["error"]["code"] == "code_revoked", path


def test_revoking_is_idempotent(app: Any, runner: Any, resident: dict[str, Any]) -> None:
    from datetime import UTC, datetime, timedelta

    from codeservice import db, residents
    from codeservice.context import data_keys

    revoke(runner, resident["phone"])
    with app.app_context():
        first = residents.revoke(db.session(), data_keys(), resident["phone"], now=datetime.now(UTC)).revoked_at
        later = datetime.now(UTC) + timedelta(days=1)
        again = residents.revoke(db.session(), data_keys(), resident["phone"], now=later).revoked_at
        assert first == again  # the first revocation's time stays
    assert "is revoked since" in revoke(runner, resident["phone"]).output


@pytest.mark.parametrize("phone", ["13900000000", "not a phone"])
def test_revoking_an_unknown_phone_is_a_clean_error(runner: Any, resident: dict[str, Any], phone: str) -> None:
    result = runner.invoke(args=["residents", "revoke", "--phone", phone])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "Traceback" not in result.output
    assert runner.invoke(args=["residents", "revoke"]).exit_code == 2  # --phone is required


def test_the_verify_endpoint_answers_revoked(logged_in: Any, runner: Any, resident: dict[str, Any]) -> None:
    token = logged_in.get("/api/v1/code").get_json()["token"]  # still valid after the revocation
    key = scanner_key(runner)
    revoke(runner, resident["phone"])
    response = logged_in.post(
        "/api/v1/verify",
        json={"token": token, "scene": "venue", "context": {}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200
    decision = response.get_json()
    assert (decision["ok"], decision["code"], decision["sub"]) == (False, "revoked", claims_of(token)["sub"])


# -- the list ------------------------------------------------------------------------


def test_the_list_verifies_with_the_served_keys_and_names_the_revoked(
    logged_in: Any, runner: Any, resident: dict[str, Any]
) -> None:
    sub = claims_of(logged_in.get("/api/v1/code").get_json()["token"])["sub"]
    other = registration()
    assert logged_in.post("/api/v1/residents", json=other).status_code == 201

    response = logged_in.get("/api/v1/revocations")
    assert response.status_code == 200
    assert response.mimetype == "application/jose"
    assert response.headers["Cache-Control"] == "public, max-age=60"
    jws = response.get_data(as_text=True)
    before = verify_revocation_list(jws, served_keys(logged_in), ISSUER, time.time())
    assert before.subs == frozenset()

    revoke(runner, other["phone"])
    revoke(runner, resident["phone"])
    jws = logged_in.get("/api/v1/revocations").get_data(as_text=True)
    subs, issued_at = verify_revocation_list(jws, served_keys(logged_in), ISSUER, time.time())[:2]
    assert sub in subs and len(subs) == 2
    assert issued_at <= time.time()
    header, claims = header_of(jws), claims_of(jws)
    assert header == {"alg": "EdDSA", "typ": REVOCATIONS_TYPE, "kid": next(iter(served_keys(logged_in)))}
    assert set(claims) == {"iss", "iat", "revoked", "credentials"}
    assert claims["revoked"] == sorted(claims["revoked"])
    assert claims["credentials"] == []  # no device or paper credential revoked


def test_the_list_has_a_strong_etag(client: Any, runner: Any, resident: dict[str, Any]) -> None:
    first = client.get("/api/v1/revocations")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')  # strong
    again = client.get("/api/v1/revocations")
    assert (again.headers["ETag"], again.data) == (etag, first.data)  # the same bytes while nothing changes

    for tag in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        unchanged = client.get("/api/v1/revocations", headers={"If-None-Match": tag})
        assert unchanged.status_code == 304, tag
        assert unchanged.data == b""
        assert unchanged.headers["ETag"] == etag

    revoke(runner, resident["phone"])
    changed = client.get("/api/v1/revocations", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag


def test_after_a_rotation_the_list_is_signed_by_the_new_key(client: Any, keys_dir: Path) -> None:
    before = client.get("/api/v1/revocations")
    new_kid = KeyStore(keys_dir).rotate().kid
    after = client.get("/api/v1/revocations", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    jws = after.get_data(as_text=True)
    assert header_of(jws)["kid"] == new_kid
    assert verify_revocation_list(jws, served_keys(client), ISSUER, time.time()).kid == new_kid


# -- never one for the other ------------------------------------------------------------


def test_a_revocation_list_is_not_a_code(client: Any, runner: Any, resident: dict[str, Any]) -> None:
    revoke(runner, resident["phone"])
    jws = client.get("/api/v1/revocations").get_data(as_text=True)
    verifier = OfflineVerifier(served_keys(client), issuer=ISSUER, venue_id="museum-1")
    decision = verifier.verify(jws, "venue", {})
    assert (decision.ok, decision.code) == (False, "wrong_type")


def test_a_code_is_not_a_revocation_list(logged_in: Any) -> None:
    token = logged_in.get("/api/v1/code").get_json()["token"]
    with pytest.raises(RevocationListError) as refused:
        verify_revocation_list(token, served_keys(logged_in), ISSUER, time.time())
    assert refused.value.reason == "wrong_type"
    assert refused.value.code == "bad_revocation_list"


# -- refused lists (no database needed) -------------------------------------------------


@pytest.fixture
def signer(keys_dir: Path) -> Any:
    return KeyStore(keys_dir).signer()


@pytest.fixture
def keys(keys_dir: Path) -> KeySet:
    return KeySet.from_jwks(KeyStore(keys_dir).jwks())


def refusal(jws: object, keys: KeySet, now: float | None = None) -> str:
    with pytest.raises(RevocationListError) as refused:
        verify_revocation_list(jws, keys, ISSUER, time.time() if now is None else now)
    return refused.value.reason


def test_a_good_list(signer: Any, keys: KeySet) -> None:
    jws = signed_list(signer, subs=["bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa"], issued_at=int(time.time()))
    subs, _issued_at, kid = verify_revocation_list(jws, keys, ISSUER, time.time())
    assert subs == {"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"}
    assert kid == signer.kid


def test_a_list_signed_by_an_unknown_key(keys: KeySet) -> None:
    stranger = make_test_key("EdDSA")
    header = {"alg": "EdDSA", "typ": REVOCATIONS_TYPE, "kid": stranger.kid}
    jws = hand_made(stranger, header, {"iss": ISSUER, "iat": int(time.time()), "revoked": []})
    assert refusal(jws, keys) == "unknown_key"
    # ... also when it claims a known kid: the signature does not hold.
    forged = hand_made(stranger, {**header, "kid": next(iter(keys))}, {"iss": ISSUER, "iat": 1, "revoked": []})
    assert refusal(forged, keys) == "bad_signature"


def test_a_tampered_list(signer: Any, keys: KeySet) -> None:
    jws = signed_list(signer, subs=["aaaaaaaaaaaaaaaa"], issued_at=int(time.time()))
    header, _claims, signature = jws.split(".")
    emptied = b64url_encode(compact_json({"iss": ISSUER, "iat": int(time.time()), "revoked": []}))
    assert refusal(f"{header}.{emptied}.{signature}", keys) == "bad_signature"
    assert refusal(jws[:-2] + ("AA" if not jws.endswith("AA") else "BA"), keys) in ("bad_signature", "malformed")


@pytest.mark.parametrize(
    ("header", "claims", "reason"),
    [
        ({"jku": "https://evil.example/jwks"}, {}, "malformed"),
        ({"typ": "rsc+jwt"}, {}, "wrong_type"),
        ({"typ": None}, {}, "wrong_type"),
        ({"alg": "ES256"}, {}, "alg_not_allowed"),
        ({"alg": "none"}, {}, "alg_not_allowed"),
        ({}, {"iss": "urn:someone-else"}, "issuer_mismatch"),
        ({}, {"iat": "1795000000"}, "malformed"),
        ({}, {"iat": True}, "malformed"),
        ({}, {"revoked": "aaaaaaaaaaaaaaaa"}, "malformed"),
        ({}, {"revoked": ["aaaaaaaaaaaaaaaa", 7]}, "malformed"),
        ({}, {"revoked": [""]}, "malformed"),
        ({}, {"revoked": None}, "malformed"),
    ],
)
def test_a_list_that_breaks_a_rule(
    keys_dir: Path, keys: KeySet, header: dict[str, Any], claims: dict[str, Any], reason: str
) -> None:
    signer = KeyStore(keys_dir).signer()
    full_header = {"alg": signer.alg, "typ": REVOCATIONS_TYPE, "kid": signer.kid, **header}
    full_claims = {"iss": ISSUER, "iat": int(time.time()), "revoked": [], **claims}
    signing_input = f"{b64url_encode(compact_json(full_header))}.{b64url_encode(compact_json(full_claims))}"
    jws = f"{signing_input}.{b64url_encode(signer.sign(signing_input.encode('ascii')))}"
    assert refusal(jws, keys) == reason


def test_a_list_from_the_future_and_the_leeway(signer: Any, keys: KeySet) -> None:
    now = time.time()
    assert refusal(signed_list(signer, subs=[], issued_at=int(now) + 60), keys, now) == "not_yet_valid"
    verify_revocation_list(signed_list(signer, subs=[], issued_at=int(now) + 5), keys, ISSUER, now)


@pytest.mark.parametrize("jws", [None, b"a.b.c", "", "a.b", "a.b.c.d", "e30.e30.AA==", " e30.e30.AA"])
def test_not_a_jws_at_all(keys: KeySet, jws: object) -> None:
    assert refusal(jws, keys) == "malformed"


def test_a_list_over_the_size_limit(signer: Any, keys: KeySet) -> None:
    subs = [f"{i:016d}" for i in range(MAX_REVOCATION_LIST_BYTES // 20)]
    assert refusal(signed_list(signer, subs=subs, issued_at=int(time.time())), keys) == "malformed"
    # Far beyond a code's 4096 bytes is fine.
    many = signed_list(signer, subs=subs[:10_000], issued_at=int(time.time()))
    assert len(verify_revocation_list(many, keys, ISSUER, time.time()).subs) == 10_000
