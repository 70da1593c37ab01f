"""Other people's test vectors through the project's own signature check.

Wycheproof (Ed25519 and ECDSA P-256/SHA-256 in the JWS P1363 form) and the
JWS compact vectors of RFC 8037, RFC 7515 and RFC 7520
(``tests/vectors/README.md`` gives their provenance). Every failure names the
vector: the Wycheproof ``tcId`` in the test id, the RFC vector's ``name``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers import ISSUER, NOW, VECTORS

from verifiers import KeySet, OfflineVerifier
from verifiers.errors import KeySetError
from verifiers.jose import b64url_decode, b64url_encode, jwk_thumbprint
from verifiers.keys import verification_key

WYCHEPROOF = {
    # prefix of the test ids: (file, number of tests the snapshot holds)
    "ed25519": ("ed25519_test.json", 151),
    "ecdsa-p256": ("ecdsa_secp256r1_sha256_p1363_test.json", 262),
}


def _load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def _group_jwk(group: dict[str, Any]) -> dict[str, Any]:
    """The group's public key as a JWK.

    Nine P-256 groups (the davidben r/s edge cases, tcIds 253-262) carry no
    ``publicKeyJwk``; their JWK is built from the same key's ``wx``/``wy``
    (hex, possibly with a leading 00 byte), so it still goes through
    ``verification_key`` like every other group.
    """
    if "publicKeyJwk" in group:
        return dict(group["publicKeyJwk"])
    point = group["publicKey"]
    assert point["curve"] == "secp256r1", point

    def coordinate(value: str) -> str:
        return b64url_encode(int(value, 16).to_bytes(32, "big"))

    return {"kty": "EC", "crv": "P-256", "x": coordinate(point["wx"]), "y": coordinate(point["wy"])}


def _wycheproof_cases() -> list[Any]:
    cases = []
    for prefix, (file_name, _count) in WYCHEPROOF.items():
        for group_index, group in enumerate(_load(file_name)["testGroups"]):
            jwk = _group_jwk(group)
            for test in group["tests"]:
                cases.append(
                    pytest.param(
                        jwk,
                        f"wycheproof-{group_index}",
                        test,
                        id=f"{prefix}-tcId-{test['tcId']}",
                    )
                )
    return cases


@pytest.mark.parametrize(("jwk", "kid", "test"), _wycheproof_cases())
def test_wycheproof_vector(jwk: dict[str, Any], kid: str, test: dict[str, Any]) -> None:
    key = verification_key({**jwk, "kid": kid})
    expected = test["result"] == "valid"

    result = key.verify(bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"]))

    assert result is expected, (
        f"tcId {test['tcId']} ({test['result']}, flags {test['flags']}, {test['comment']!r}): "
        f"the project's check returned {result}"
    )


@pytest.mark.parametrize("prefix", sorted(WYCHEPROOF))
def test_wycheproof_files_are_complete(prefix: str) -> None:
    """A truncated or edited file shows up here, not as silently fewer tests."""
    file_name, count = WYCHEPROOF[prefix]
    data = _load(file_name)
    tests = [test for group in data["testGroups"] for test in group["tests"]]

    assert data["numberOfTests"] == count
    assert len(tests) == count
    assert len({test["tcId"] for test in tests}) == count
    assert {test["result"] for test in tests} <= {"valid", "invalid"}
    assert len(_wycheproof_cases()) == sum(n for _, n in WYCHEPROOF.values()) == 151 + 262


# -- RFC 8037, RFC 7515, RFC 7520 --------------------------------------------

RFC = {vector["name"]: vector for vector in _load("rfc_jws_vectors.json")["vectors"]}
ACCEPTED_BY_SIGNATURE = ["RFC8037-A.4-Ed25519", "RFC7515-A.3-ES256"]
OUTSIDE_THE_CONTRACT = ["RFC7520-4.1-RS256", "RFC7520-4.3-ES512", "RFC7520-4.4-HS256"]


def _split(compact: str) -> tuple[bytes, bytes]:
    """(signing input, signature) of a compact JWS."""
    header, payload, signature = compact.split(".")
    return f"{header}.{payload}".encode("ascii"), b64url_decode(signature)


def test_rfc_vectors_are_all_there() -> None:
    assert sorted(RFC) == sorted(ACCEPTED_BY_SIGNATURE + OUTSIDE_THE_CONTRACT)


@pytest.mark.parametrize("name", ACCEPTED_BY_SIGNATURE)
def test_rfc_signature_verifies_with_the_projects_check(name: str) -> None:
    vector = RFC[name]
    key = verification_key({**vector["jwk"], "kid": "rfc"})
    signing_input, signature = _split(vector["jws_compact"])
    header_b64, payload_b64, _ = vector["jws_compact"].split(".")

    assert key.alg == vector["alg"], name
    assert b64url_decode(header_b64).decode() == vector["protected_header_json"], name
    assert b64url_decode(payload_b64).decode() == vector["expected_payload"], name
    assert key.verify(signature, signing_input) is True, name
    # Other signed bytes, or one flipped bit in the signature: refused.
    assert key.verify(signature, signing_input + b"x") is False, name
    assert key.verify(bytes([signature[0] ^ 1]) + signature[1:], signing_input) is False, name


def test_rfc8037_a3_thumbprint() -> None:
    vector = RFC["RFC8037-A.4-Ed25519"]
    assert b64url_encode(jwk_thumbprint(vector["jwk"])) == vector["jwk_thumbprint_sha256"]
    assert vector["jwk_thumbprint_sha256"] == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rfc8037_a1_key_reproduces_the_a4_signature() -> None:
    vector = RFC["RFC8037-A.4-Ed25519"]
    private_key = Ed25519PrivateKey.from_private_bytes(b64url_decode(vector["rfc_private_jwk"]["d"]))
    signing_input, signature = _split(vector["jws_compact"])

    assert private_key.sign(signing_input) == signature


@pytest.mark.parametrize("name", OUTSIDE_THE_CONTRACT)
def test_rfc7520_keys_are_refused(name: str) -> None:
    """RSA, EC P-521 and oct keys are not keys of the contract (and oct's ``k`` is private)."""
    with pytest.raises(KeySetError):
        verification_key(RFC[name]["jwk"])
    with pytest.raises(KeySetError):
        KeySet.from_jwks({"keys": [RFC[name]["jwk"]]})


@pytest.mark.parametrize("name", OUTSIDE_THE_CONTRACT)
def test_rfc7520_tokens_are_refused_by_the_verifier(
    name: str, verifier: OfflineVerifier, transit_in: dict[str, str]
) -> None:
    """Rule 1 comes first: the RFC 7520 payload is prose, not a JSON object."""
    decision = verifier.verify(RFC[name]["jws_compact"], "transit", transit_in, now=NOW)

    assert (decision.ok, decision.code) == (False, "malformed"), name
    assert (decision.sub, decision.jti) == (None, None)


@pytest.mark.parametrize(
    ("name", "code"),
    [
        # The payload "Example of Ed25519 signing" is not JSON: rule 1.
        ("RFC8037-A.4-Ed25519", "malformed"),
        # A JSON object payload, but the header is {"alg":"ES256"}: no typ, rule 2.
        ("RFC7515-A.3-ES256", "wrong_type"),
    ],
)
def test_rfc_tokens_are_not_resident_codes(name: str, code: str, transit_in: dict[str, str]) -> None:
    """Validly signed by a key the verifier holds, yet not a resident code."""
    vector = RFC[name]
    keys = KeySet([verification_key({**vector["jwk"], "kid": "rfc-key"})])
    verifier = OfflineVerifier(keys, issuer=ISSUER, venue_id="museum-1", device_id="gate-1")

    decision = verifier.verify(vector["jws_compact"], "transit", transit_in, now=NOW)

    assert (decision.ok, decision.code) == (False, code), name
    assert (decision.sub, decision.jti) == (None, None)
