"""Contract section 9, rules 1-5, through verifiers.offline_codes.check_offline_code.

The shared vectors first (every case decided by rules 1-5 by its code; the
rest must pass rules 1-5 with the expected form, jti and sub); then attacks
on codes minted here with the test keys; an independent COSE implementation
(pycose) reading what we mint.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from helpers import (
    ISSUER,
    NOW,
    VECTORS,
    TestKey,
    b64json,
    default_claims,
    make_test_key,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from offline_minting import (
    HINT,
    DeviceKey,
    a_device_code,
    a_paper_code,
    credential,
    credential_claims,
)

from verifiers import KeySet, cbor
from verifiers.base45 import b45decode, b45encode
from verifiers.cose import parse_sign1, sign1
from verifiers.errors import Rejection
from verifiers.jose import b64url_decode, b64url_encode
from verifiers.offline_codes import (
    check_offline_code,
    code_form,
    device_code,
    paper_code,
)
from verifiers.tokens import VerificationRules

VECTORS = json.loads((VECTORS / "section9_vectors.json").read_text(encoding="utf-8"))
DECIDED_LATER = {"accepted", "scene_not_allowed", "attendant_required", "revoked", "replayed"}
"""Codes of rules 6-9 (the verifier's shared steps): rules 1-5 pass for these cases."""
BEFORE_THE_SIGNATURE = {"malformed", "wrong_type", "alg_not_allowed", "unknown_key", "bad_signature"}

ED25519 = make_test_key("EdDSA")
ES256 = make_test_key("ES256")
KEYS = KeySet.from_jwks({"keys": [ED25519.jwk, ES256.jwk]})
RULES = VerificationRules(issuer=ISSUER)


def check(text: object, keys: KeySet = KEYS, now: float = NOW) -> Any:
    return check_offline_code(text, keys, RULES, now)


def rejection_of(text: object, now: float = NOW) -> Rejection:
    with pytest.raises(Rejection) as caught:
        check(text, now=now)
    return caught.value


def code_of(text: object, now: float = NOW) -> str:
    return rejection_of(text, now).code


# -- the shared vectors ------------------------------------------------------


def test_the_vectors_are_the_shared_ones() -> None:
    assert VECTORS["numberOfCases"] == len(VECTORS["cases"]) == 90


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[case["id"] for case in VECTORS["cases"]])
def test_vector(case: dict[str, Any]) -> None:
    keys = KeySet.from_jwks(VECTORS["jwks"])
    rules = VerificationRules(issuer=VECTORS["issuer"], leeway=VECTORS["leeway"])
    expected = case["expected"]
    assert code_form(case["code"]) == expected["form"]
    for earlier in case["presented_before"]:  # replay cases: the earlier code passes rules 1-5 or fails alone
        try:
            check_offline_code(earlier, keys, rules, case["now"])
        except Rejection:
            pass
    if expected["code"] in DECIDED_LATER:
        code = check_offline_code(case["code"], keys, rules, case["now"])
        assert (code.form, code.jti, code.sub) == (expected["form"], expected["jti"], expected["sub"]), case["id"]
        if expected["form"] == "paper":
            assert code.check_id == HINT_OF(case)
        else:
            assert code.check_id is None
        return
    with pytest.raises(Rejection) as caught:
        check_offline_code(case["code"], keys, rules, case["now"])
    verified = caught.value.verified
    got = (
        caught.value.code,
        verified.jti if verified else None,
        verified.sub if verified else None,
        verified.form if verified else expected["form"],
    )
    assert got == (expected["code"], expected["jti"], expected["sub"], expected["form"]), case["id"]


def HINT_OF(case: dict[str, Any]) -> Any:
    """The hint the vector expects: given on accepted paper cases; the others carry the usual one."""
    return case["expected"].get("check_id", {"n": "张*明", "b": "0521", "i": "123X"})


# -- what we mint ------------------------------------------------------------


@pytest.mark.parametrize("issuer_key", [ED25519, ES256], ids=["EdDSA", "ES256"])
def test_a_minted_device_code_passes_rules_1_to_5(issuer_key: TestKey) -> None:
    cti = bytes(range(8))
    text = a_device_code(issuer_key, t=NOW - 5, labels={7: cti, "cat": "senior"})
    assert text.startswith("RSD1:")
    code = check(text)
    assert (code.form, code.jti, code.cti, code.t, code.category) == (
        "device", f"{b64url_encode(cti)}-{NOW - 5}", b64url_encode(cti), NOW - 5, "senior"
    )
    assert code.kid == issuer_key.kid and code.scopes == ("clinic", "transit", "venue") and code.check_id is None


def test_a_minted_paper_code_passes_with_its_hint() -> None:
    cti = bytes(range(8))
    code = check(a_paper_code(ED25519, labels={7: cti}))
    assert (code.form, code.jti, code.t, code.check_id) == ("paper", b64url_encode(cti), None, HINT)


def test_a_device_code_of_the_default_issuer_stays_small() -> None:
    assert len(a_device_code(ED25519)) < 500 and len(a_device_code(ES256, labels={"cat": "student"})) < 520


# -- attacks -----------------------------------------------------------------


def body(text: str) -> bytes:
    return b45decode(text[5:])


def rewrap(prefix: str, data: bytes) -> str:
    return prefix + b45encode(data)


def presentation(payload: dict[Any, Any], device: DeviceKey, protected: dict[Any, Any] | None = None) -> str:
    protected = {1: -7} if protected is None else protected
    return "RSD1:" + b45encode(sign1(protected, cbor.dumps(payload), device.sign))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda text: text[:5] + text[5:].lower(),
        lambda text: text[:5] + "a" + text[6:],
        lambda text: text + "0",  # length 1 (mod 3)
        lambda text: text[:5] + "GGW" + text[8:],  # a group worth 65536
        lambda text: text[:5] + ":::" + text[8:],
        lambda text: text + " ",
        lambda text: " " + text,
        lambda text: text[:5] + text[5:] + "\n",
        lambda text: "rsd1:" + text[5:],
        lambda text: "RSD2:" + text[5:],
        lambda text: text + "0" * (4097 - len(text)),
    ],
    ids=["lowercase", "one-lowercase", "length-1-mod-3", "group-65536", "group-91124", "trailing-space",
         "leading-space", "newline", "lowercase-prefix", "unknown-prefix", "4097-characters"],
)
def test_text_attacks_are_malformed(mangle: Any) -> None:
    text = a_device_code(ED25519)
    mangled = mangle(text)
    assert code_of(mangled) == "malformed" and rejection_of(mangled).verified is None


def test_a_jws_behind_either_prefix_is_malformed() -> None:
    signing_input = f"{b64json({'alg': 'EdDSA', 'typ': 'rsc+jwt', 'kid': ED25519.kid})}.{b64json(default_claims())}"
    jws = f"{signing_input}.{b64url_encode(ED25519.sign(signing_input.encode()))}"
    for prefix in ("RSD1:", "RSP1:"):
        assert code_of(prefix + jws) == "malformed"
        assert code_of(prefix + jws.upper()) == "malformed"  # in the alphabet but not CBOR
        assert code_of(prefix + b45encode(jws.encode())) == "malformed"  # Base45 of the JWS text


@pytest.mark.parametrize(
    "mangle",
    [
        lambda data: data + b"\x00",
        lambda data: data + b"\xa0",
        lambda data: b"\xd2\x9f" + data[2:] + b"\xff",  # indefinite-length array
        lambda data: data[1:],  # untagged
        lambda data: b"\xd1" + data[1:],  # tag 17
        lambda data: b"\xc1" + data,  # tag 1 around tag 18
        lambda data: b"\xd2\x83" + data[2:-65],  # three members (no signature)
        lambda data: data[:-10],  # truncated
    ],
    ids=["trailing-byte", "trailing-map", "indefinite-array", "untagged", "tag-17", "tag-1", "three-members",
         "truncated"],
)
@pytest.mark.parametrize("prefix", ["RSD1:", "RSP1:"])
def test_outer_cbor_attacks_are_malformed(prefix: str, mangle: Any) -> None:
    text = a_device_code(ED25519) if prefix == "RSD1:" else a_paper_code(ED25519)
    assert code_of(rewrap(prefix, mangle(body(text)))) == "malformed"


def test_inner_cbor_attacks_are_malformed() -> None:
    device = DeviceKey()
    issued = credential(ED25519, credential_claims(device=device))
    good = {1: issued, 2: NOW}
    assert check(presentation(good, device)).sub == "q1w2e3r4t5y6u7i8"
    # the credential's bytes with a trailing byte, untagged, under an indefinite-length head
    assert code_of(presentation({1: issued + b"\x00", 2: NOW}, device)) == "malformed"
    assert code_of(presentation({1: issued[1:], 2: NOW}, device)) == "malformed"
    # the payload: a third key, t missing, t negative, t as text
    for payload in ({1: issued, 2: NOW, 3: 0}, {1: issued}, {1: issued, 2: -1}, {1: issued, 2: "1767225600"}):
        assert code_of(presentation(payload, device)) == "malformed", payload
    raw_payloads = [
        b"\xbf\x01" + cbor.dumps(issued) + b"\x02" + cbor.dumps(NOW) + b"\xff",  # indefinite map
        b"\xa2\x01" + cbor.dumps(issued) + b"\x02\xfb" + struct.pack(">d", NOW),  # t as a float
        b"\xa2\x01" + cbor.dumps(issued) + b"\x02\xc1" + cbor.dumps(NOW),  # t in tag 1
        b"\xa2\x01" + cbor.dumps(issued) + b"\x01" + cbor.dumps(issued),  # duplicate key
        b"\xa2\x01" + cbor.dumps(issued) + b"\x02" + cbor.dumps(NOW) + b"\x00",  # trailing
    ]
    for raw in raw_payloads:  # rule 1 comes before any signature: a junk one will do
        text = "RSD1:" + b45encode(cbor.dumps(cbor.Tag(18, [b"\xa1\x01\x26", {}, raw, device.sign(b"x")])))
        assert code_of(text) == "malformed", raw.hex()


def claims_bytes_code(raw_claims: bytes, issuer_key: TestKey = ED25519) -> str:
    """A paper code whose claims are the given bytes, signed properly by the issuer."""
    protected = cbor.dumps({1: -8 if issuer_key.alg == "EdDSA" else -7, 4: b64url_decode(issuer_key.kid)})
    from verifiers.cose import sig_structure

    signature = issuer_key.sign(sig_structure(protected, raw_claims))
    return paper_code(cbor.dumps(cbor.Tag(18, [protected, {}, raw_claims, signature])))


def test_duplicate_claims_are_malformed_before_the_signature_is_trusted() -> None:
    claims = cbor.dumps(credential_claims("paper"))
    assert check(claims_bytes_code(claims)).form == "paper"
    duplicated = bytes([claims[0] + 1]) + claims[1:] + b"\x01" + cbor.dumps("urn:someone:else")
    rejection = rejection_of(claims_bytes_code(duplicated))
    assert rejection.code == "malformed" and rejection.verified is None


def test_17_levels_of_nesting_in_a_signed_claim_are_malformed() -> None:
    def nested(depth: int) -> Any:
        return [] if depth == 1 else [nested(depth - 1)]

    assert check(claims_bytes_code(cbor.dumps(credential_claims("paper", labels={"x": nested(15)})))).form == "paper"
    deep = claims_bytes_code(cbor.dumps(credential_claims("paper", labels={"x": nested(16)})))  # 17 with the map
    assert code_of(deep) == "malformed"


def test_a_huge_declared_length_is_malformed_without_allocating() -> None:
    claims = cbor.dumps(credential_claims("paper"))
    huge = bytes([claims[0] + 1]) + claims[1:] + b"\x61x\x5b" + (2**63).to_bytes(8, "big")
    assert code_of(claims_bytes_code(huge)) == "malformed"
    text = "RSD1:" + b45encode(b"\xd2\x84\x5b" + (2**63 - 1).to_bytes(8, "big"))
    assert code_of(text) == "malformed"


def test_a_float_or_a_foreign_tag_anywhere_in_the_claims_is_malformed() -> None:
    claims = cbor.dumps(credential_claims("paper"))
    for extra in (b"\x61x\xf9\x3c\x00", b"\x61x\xc1\x00", b"\x61x\x62\xc3\x28"):
        assert code_of(claims_bytes_code(bytes([claims[0] + 1]) + claims[1:] + extra)) == "malformed", extra.hex()


def test_a_signature_in_der_is_bad_signature() -> None:
    device = DeviceKey()
    issued = credential(ED25519, credential_claims(device=device))

    def der_sign(data: bytes) -> bytes:
        return device.private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    rejection = rejection_of(device_code(issued, NOW, der_sign))
    assert rejection.code == "bad_signature" and rejection.verified.sub == "q1w2e3r4t5y6u7i8"
    # and an ES256 issuer's credential signed in DER
    claims = credential_claims("paper")
    der_issued = sign1({1: -7, 4: b64url_decode(ES256.kid)}, cbor.dumps(claims),
                       lambda data: ES256.private_key.sign(data, ec.ECDSA(hashes.SHA256())))
    rejection = rejection_of(paper_code(der_issued))
    assert rejection.code == "bad_signature" and rejection.verified is None


def test_a_high_s_presentation_signature_is_accepted() -> None:
    device = DeviceKey()
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

    def high_s_sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(device.private_key.sign(data, ec.ECDSA(hashes.SHA256())))
        s = s if s > n // 2 else n - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    text = device_code(credential(ES256, credential_claims(device=device)), NOW, high_s_sign)
    assert check(text).form == "device"


@pytest.mark.parametrize(
    ("protected", "expected"),
    [
        ({1: -8}, "alg_not_allowed"),
        ({1: -35}, "alg_not_allowed"),
        ({1: 0}, "alg_not_allowed"),
        ({1: "none"}, "malformed"),
        ({1: "ES256"}, "malformed"),
        ({1: -7, 4: b"12345678"}, "malformed"),
        ({1: -7, 3: 61}, "malformed"),
        ({}, "malformed"),
        ({4: b"12345678"}, "malformed"),
    ],
    ids=["alg-8", "alg-35", "alg-0", "alg-none", "alg-text", "extra-kid", "extra-content-type", "empty", "no-alg"],
)
def test_presentation_headers(protected: dict[Any, Any], expected: str) -> None:
    device = DeviceKey()
    issued = credential(ED25519, credential_claims(device=device))
    assert code_of(presentation({1: issued, 2: NOW}, device, protected)) == expected


def test_an_unprotected_member_at_either_level_is_malformed() -> None:
    device = DeviceKey()
    issued = credential(ED25519, credential_claims(device=device))
    members = cbor.loads(issued).value
    with_kid = cbor.dumps(cbor.Tag(18, [members[0], {4: b64url_decode(ED25519.kid)}, members[2], members[3]]))
    assert code_of(device_code(with_kid, NOW, device.sign)) == "malformed"
    assert code_of(paper_code(cbor.dumps(cbor.Tag(18, [members[0], {1: -8}, members[2], members[3]])))) == "malformed"
    outer = cbor.loads(body(device_code(issued, NOW, device.sign))).value
    outer[1] = {1: -7}
    assert code_of("RSD1:" + b45encode(cbor.dumps(cbor.Tag(18, outer)))) == "malformed"


@pytest.mark.parametrize(
    ("protected", "expected"),
    [
        ({1: -8, 4: "kid-text"}, "malformed"),
        ({1: -8}, "malformed"),
        ({4: b"12345678"}, "malformed"),
        ({1: -8, 4: b"12345678", 3: 61}, "malformed"),
        ({1: -19, 4: None}, "alg_not_allowed"),  # None: the Ed25519 key's kid, filled in below
        ({1: -7, 4: None}, "alg_not_allowed"),  # ES256 under the EdDSA key's kid
        ({1: -8, 4: b"\x00" * 8}, "unknown_key"),
        ({1: -8, 4: b""}, "unknown_key"),
        ({1: -8, 4: b"\x00" * 1000}, "unknown_key"),
    ],
)
def test_credential_headers(protected: dict[Any, Any], expected: str) -> None:
    if protected.get(4, b"") is None:
        protected[4] = b64url_decode(ED25519.kid)
    issued = sign1(protected, cbor.dumps(credential_claims("paper")), ED25519.sign)
    assert code_of(paper_code(issued)) == expected


def test_another_devices_key_is_bad_signature() -> None:
    owner, thief = DeviceKey(), DeviceKey()
    issued = credential(ED25519, credential_claims(device=owner))
    rejection = rejection_of(device_code(issued, NOW, thief.sign))
    assert rejection.code == "bad_signature" and rejection.verified.sub == "q1w2e3r4t5y6u7i8"


def test_another_residents_credential_is_bad_signature() -> None:
    """The attacker's phone presents a victim's credential (copied off a screen): it cannot sign for its cnf key."""
    attacker, victim = DeviceKey(), DeviceKey()
    victims = credential(ED25519, credential_claims(device=victim, labels={2: "victimvictimvict"}))
    assert code_of(device_code(victims, NOW, attacker.sign)) == "bad_signature"
    # nor does swapping the credential under the attacker's own signed presentation help
    attackers = body(device_code(credential(ED25519, credential_claims(device=attacker)), NOW, attacker.sign))
    outer = cbor.loads(attackers).value
    outer[2] = cbor.dumps({1: victims, 2: NOW})
    assert code_of("RSD1:" + b45encode(cbor.dumps(cbor.Tag(18, outer)))) == "bad_signature"


def test_a_tampered_credential_is_bad_signature_and_names_nobody() -> None:
    claims = credential_claims("paper", labels={"scp": ["clinic"]})
    issued = cbor.loads(credential(ED25519, claims)).value
    issued[2] = cbor.dumps({**claims, "scp": ["clinic", "transit", "venue"]})
    rejection = rejection_of(paper_code(cbor.dumps(cbor.Tag(18, issued))))
    assert rejection.code == "bad_signature" and rejection.verified is None


def test_a_paper_credential_behind_rsd1() -> None:
    paper = credential(ED25519, credential_claims("paper"))
    assert code_of("RSD1:" + b45encode(paper)) == "malformed"  # bare: not a presentation
    device = DeviceKey()
    rejection = rejection_of(device_code(paper, NOW, device.sign))  # inside a presentation
    assert (rejection.code, rejection.verified.form) == ("wrong_type", "device")


def test_a_device_credential_behind_rsp1_is_wrong_type() -> None:
    issued = credential(ED25519, credential_claims(device=DeviceKey(), labels={7: b"\x01" * 8}))
    rejection = rejection_of(paper_code(issued))
    assert (rejection.code, rejection.verified.form, rejection.verified.jti) == ("wrong_type", "paper", "AQEBAQEBAQE")
    device_text = a_device_code(ED25519)
    assert code_of("RSP1:" + device_text[5:]) == "malformed"  # a whole device code behind RSP1:


def _off_curve_x() -> bytes:
    for x in range(1, 100):
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x02" + x.to_bytes(32, "big"))
        except ValueError:
            return x.to_bytes(32, "big")
    raise AssertionError("no off-curve x below 100")


OFF_CURVE_X = _off_curve_x()


@pytest.mark.parametrize(
    ("use", "labels", "expected"),
    [
        ("device", {"use": None}, "malformed"),
        ("device", {"use": 1}, "malformed"),
        ("device", {"use": "Device"}, "wrong_type"),
        ("device", {1: None}, "malformed"),
        ("device", {1: b"urn"}, "malformed"),
        ("device", {1: ""}, "issuer_mismatch"),
        ("device", {1: "urn:codeservice:other"}, "issuer_mismatch"),
        ("device", {2: None}, "malformed"),
        ("device", {2: ""}, "malformed"),
        ("device", {2: "a\x00b"}, "malformed"),
        ("device", {4: -1}, "malformed"),
        ("device", {4: True}, "malformed"),
        ("device", {6: None}, "malformed"),
        ("device", {7: b"\x00" * 7}, "malformed"),
        ("device", {7: "AAAAAAAAAAA"}, "malformed"),
        ("device", {"scp": "venue"}, "malformed"),
        ("device", {"scp": ["venue", 1]}, "malformed"),
        ("device", {"cat": "vip"}, "malformed"),
        ("device", {"cat": False}, "malformed"),
        ("device", {"hint": HINT}, "malformed"),
        ("device", {8: None}, "malformed"),
        ("device", {8: {1: {1: 2, -1: 1, -2: OFF_CURVE_X, -3: False}}}, "malformed"),  # no point has this x
        ("device", {8: {1: {1: 2, -1: 1, -2: b"\xff" * 32, -3: False}}}, "malformed"),  # x >= p
        ("device", {8: {1: {1: 2, -1: 1, -2: b"\x01" * 31, -3: False}}}, "malformed"),
        ("device", {8: {1: {1: 2, -1: 1, -2: b"\x01" * 32, -3: 0}}}, "malformed"),
        ("device", {8: {1: {1: 2, -1: 2, -2: b"\x01" * 32, -3: False}}}, "malformed"),
        ("device", {8: {1: {1: 1, -1: 1, -2: b"\x01" * 32, -3: False}}}, "malformed"),
        ("device", {6: NOW - 259200, 4: NOW + 1}, "malformed"),
        ("device", {6: NOW, 4: NOW}, "malformed"),
        ("paper", {"hint": None}, "malformed"),
        ("paper", {"hint": {"n": "张*明"}}, "malformed"),
        ("paper", {"hint": {"n": "张*明", "i": "123X", "phone": "138"}}, "malformed"),
        ("paper", {"hint": {"n": "张*明", "i": "123X", "b": "May5"}}, "malformed"),
        ("paper", {8: {1: DeviceKey().cose_key}}, "malformed"),
        ("paper", {"use": "device"}, "wrong_type"),
        ("paper", {6: NOW - 15552000, 4: NOW + 1}, "malformed"),
        ("paper", {1: ""}, "issuer_mismatch"),
    ],
)
def test_claims_after_the_signature(use: str, labels: dict[Any, Any], expected: str) -> None:
    text = a_device_code(ED25519, labels=labels) if use == "device" else a_paper_code(ED25519, labels=labels)
    rejection = rejection_of(text)
    assert rejection.code == expected
    assert rejection.verified.form == use  # rule 3 passed: the decision names what it can
    if 2 not in labels:
        assert rejection.verified.sub == "q1w2e3r4t5y6u7i8"


def test_device_code_with_the_cnf_keys_point_in_the_other_parity_is_bad_signature() -> None:
    device = DeviceKey()
    flipped = device.cose_key
    flipped[-3] = not flipped[-3]
    issued = credential(ED25519, credential_claims(device=device, labels={8: {1: flipped}}))
    assert code_of(device_code(issued, NOW, device.sign)) == "bad_signature"


@pytest.mark.parametrize(
    ("t", "now", "iat", "expected"),
    [
        (NOW - 70, NOW, NOW - 3600, None),
        (NOW - 71, NOW, NOW - 3600, "expired"),
        (NOW + 10, NOW, NOW - 3600, None),
        (NOW + 11, NOW, NOW - 3600, "not_yet_valid"),
        (NOW - 40, NOW, NOW - 30, None),  # t = iat - 10
        (NOW - 41, NOW, NOW - 30, "not_yet_valid"),
        (NOW + 86400, NOW + 86400, NOW, None),  # t = exp (exp is NOW + 86400)
        (NOW + 86401, NOW + 86401, NOW, "expired"),  # t > exp: no leeway
        (NOW - 100, NOW, NOW - 30, "expired"),  # too old and before iat: expiry first
    ],
)
def test_presentation_time(t: int, now: int, iat: int, expected: str | None) -> None:
    text = a_device_code(ED25519, t=t, labels={6: iat})
    if expected is None:
        assert check(text, now=now).t == t
    else:
        rejection = rejection_of(text, now=now)
        assert (rejection.code, rejection.verified.jti.endswith(f"-{t}")) == (expected, True)


def test_an_expired_credential_is_expired_before_the_presentation_is_looked_at() -> None:
    owner, thief = DeviceKey(), DeviceKey()
    issued = credential(ED25519, credential_claims(device=owner, labels={4: NOW - 11, 6: NOW - 3600}))
    assert code_of(device_code(issued, NOW - 20, thief.sign)) == "expired"


def test_rules_outside_the_verifiers_allow_list() -> None:
    only_es256 = VerificationRules(issuer=ISSUER, algorithms=frozenset({"ES256"}))
    with pytest.raises(Rejection) as caught:
        check_offline_code(a_paper_code(ED25519), KEYS, only_es256, NOW)
    assert caught.value.code == "alg_not_allowed"
    assert check_offline_code(a_paper_code(ES256), KEYS, only_es256, NOW).form == "paper"


@pytest.mark.parametrize("token", [None, 1, b"RSD1:", ["RSD1:"], "", "RSD1:", "RSP1:", "RSD1", "RSD1:\x00"])
def test_anything_is_a_rejection(token: object) -> None:
    assert code_of(token) == "malformed"


# -- hypothesis: no change to a valid device code is ever accepted -------------

DEVICE = DeviceKey()
VALID = a_device_code(ED25519, device=DEVICE, t=NOW)
FAST = settings(deadline=None, database=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.data())
def test_a_changed_character_is_never_accepted(data: st.DataObject) -> None:
    index = data.draw(st.integers(5, len(VALID) - 1))
    character = data.draw(st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:abcé\x00"))
    mutated = VALID[:index] + character + VALID[index + 1 :]
    if mutated == VALID:
        return
    with pytest.raises(Rejection) as caught:
        check(mutated)
    assert caught.value.code in BEFORE_THE_SIGNATURE


@FAST
@given(st.data())
def test_a_changed_byte_is_never_accepted(data: st.DataObject) -> None:
    raw = bytearray(body(VALID))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(Rejection) as caught:
        check("RSD1:" + b45encode(bytes(raw)))
    assert caught.value.code in BEFORE_THE_SIGNATURE


@FAST
@given(st.binary(max_size=600), st.sampled_from(["RSD1:", "RSP1:"]))
def test_any_bytes_are_a_rejection(raw: bytes, prefix: str) -> None:
    with pytest.raises(Rejection):
        check(prefix + b45encode(raw))


# -- an independent implementation: pycose ------------------------------------


def public_pem(private_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@pytest.mark.parametrize("issuer_key", [ED25519, ES256], ids=["EdDSA", "ES256"])
def test_pycose_verifies_a_credential_we_mint(issuer_key: TestKey) -> None:
    from pycose.keys import CoseKey
    from pycose.messages import Sign1Message

    issued = credential(issuer_key, credential_claims(device=DeviceKey()))
    message = Sign1Message.decode(issued)
    message.key = CoseKey.from_pem_public_key(public_pem(issuer_key.private_key))
    assert message.verify_signature()
    assert message.phdr_encoded == cbor.loads(issued).value[0]


def test_pycose_decodes_and_verifies_a_device_presentation() -> None:
    from pycose.keys import CoseKey
    from pycose.messages import Sign1Message

    device = DeviceKey()
    text = a_device_code(ES256, device=device)
    message = Sign1Message.decode(body(text))
    message.key = CoseKey.from_pem_public_key(public_pem(device.private_key))
    assert message.verify_signature()
    assert parse_sign1(body(text)).payload == message.payload


def test_we_verify_what_pycose_signs() -> None:
    from cryptography.hazmat.primitives import serialization
    from pycose.headers import KID, Algorithm
    from pycose.keys import CoseKey
    from pycose.messages import Sign1Message

    claims = credential_claims("paper")
    message = Sign1Message(
        phdr={Algorithm: -7, KID: b64url_decode(ES256.kid)}, payload=cbor.dumps(claims)
    )
    message.key = CoseKey.from_pem_private_key(
        ES256.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
    )
    assert check(paper_code(message.encode(tag=True))).sub == claims[2]
