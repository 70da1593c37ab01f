"""Contract section 2: every verification rule and decision code, in order.

One small test per rule (parametrized over the ways it can fail); each checks
the exact decision code, ``ok`` and the decision's JSON shape. Codes are
built with conftest's ``make_token`` (re-signed after every change, so only
the rule under test can refuse them) or from raw segments signed here.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import pytest
from helpers import (
    ALL_SCENES,
    DROP,
    ISSUER,
    NOW,
    b64json,
    default_claims,
    make_test_key,
)

import verifiers.tokens
from verifiers import ConfigurationError, KeySet, OfflineVerifier, SceneRegistry
from verifiers.jose import _B64URL_CHARS, b64url_decode, b64url_encode

DECISION_KEYS = {"ok", "code", "scene", "form", "sub", "jti", "exp", "check_id", "detail", "message"}
RECORD_KEYS = {"id", "scene", "venue_id", "device_id", "sub", "jti", "decided_at", "ok", "code", "detail", "form"}
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\Z")
SUB = "q1w2e3r4t5y6u7i8"  # helpers.default_claims
USE_DEFAULT = object()

# The contract's decision codes: section 2 (rules 1-8, and accepted), section 3
# (unknown_scene, bad_context, and the built-in scenes' own codes).
CONTRACT_CODES = {
    "accepted",
    "malformed",
    "wrong_type",
    "alg_not_allowed",
    "unknown_key",
    "bad_signature",
    "issuer_mismatch",
    "expired",
    "not_yet_valid",
    "scene_not_allowed",
    "attendant_required",
    "revoked",
    "replayed",
    "unknown_scene",
    "bad_context",
    "no_appointment",
    "already_checked_in",
    "passback",
    "no_entry",
    "already_entered",
    "capacity_full",
    "no_reservation",
}


def expect(decision: Any, code: str) -> Any:
    """The decision has exactly the contract's fields, this code, and ok iff accepted."""
    as_dict = decision.to_dict()
    assert set(as_dict) == DECISION_KEYS
    assert (as_dict["code"], as_dict["ok"]) == (code, code == "accepted"), as_dict["message"]
    assert (decision.code, decision.ok) == (code, code == "accepted")
    assert type(as_dict["message"]) is str and as_dict["message"]
    json.dumps(as_dict)  # the CLI prints it, the endpoint returns it
    return decision


def signed(key: Any, header_segment: str, claims_segment: str) -> str:
    """A compact JWS over raw (already base64url) segments, validly signed by ``key``."""
    signing_input = f"{header_segment}.{claims_segment}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


def header_segment(key: Any, **members: Any) -> str:
    return b64json({"alg": key.alg, "typ": "rsc+jwt", "kid": key.kid, **members})


def set_unused_bits(segment: str) -> str:
    """The same bytes, non-canonically: the last character's unused low bits set."""
    unused = {2: 0b1111, 3: 0b11}[len(segment) % 4]
    index = _B64URL_CHARS.index(segment[-1])
    assert index & unused == 0, "the encoder was canonical"
    changed = segment[:-1] + _B64URL_CHARS[index | unused]
    assert _lax_decode(changed) == _lax_decode(segment)  # a lax decoder sees the same bytes
    return changed


def _lax_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@pytest.fixture
def present(verifier: OfflineVerifier, transit_in: dict[str, str]):
    """``present(token, scene="transit", context=transit_in, now=NOW, via=verifier)``."""

    def run(
        token: object,
        *,
        scene: object = "transit",
        context: object = USE_DEFAULT,
        now: float = NOW,
        via: OfflineVerifier | None = None,
    ) -> Any:
        if context is USE_DEFAULT:
            context = transit_in if scene == "transit" else {"department": "cardiology"}
        return (via or verifier).verify(token, scene, context, now=now)

    return run


@pytest.fixture
def valid(make_token) -> str:
    return make_token()


def test_a_valid_code_is_accepted_with_the_contract_fields(present, valid):
    decision = expect(present(valid), "accepted")
    claims = json.loads(_lax_decode(valid.split(".")[1]))
    assert (decision.scene, decision.sub, decision.jti, decision.exp) == (
        "transit",
        SUB,
        claims["jti"],
        NOW + 60,
    )
    assert decision.detail["station"] == "人民广场"


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_both_algorithms_are_accepted(present, make_token, ed25519_key, es256_key, alg):
    key = ed25519_key if alg == "EdDSA" else es256_key
    expect(present(make_token(key=key)), "accepted")


# -- rule 1: size, form, base64url, JSON -------------------------------------


def sized_token(make_token, key: Any, length: int) -> str:
    """A valid code of exactly ``length`` characters (padded with an unknown claim)."""
    compact = json.dumps({"alg": key.alg, "typ": "rsc+jwt", "kid": key.kid}, separators=(",", ":"))
    for spaces in range(3):  # JSON whitespace in the header shifts the length by one
        header = compact.replace(",", ", ", spaces)
        for pad in range(length * 3 // 4 - 400, length * 3 // 4):
            token = make_token(key=key, header=header, pad="x" * pad)
            if len(token) == length:
                return token
    raise AssertionError(f"no code of length {length}")


@pytest.fixture
def decoding_spy(monkeypatch) -> list[str]:
    """Records every segment the verifier decodes."""
    calls: list[str] = []
    real = verifiers.tokens._segment

    def spy(segment: str, standard: bytes) -> bytes:
        calls.append(segment)
        return real(segment, standard)

    monkeypatch.setattr(verifiers.tokens, "_segment", spy)
    return calls


def test_a_code_of_exactly_4096_bytes_is_parsed_and_accepted(present, make_token, ed25519_key, decoding_spy):
    token = sized_token(make_token, ed25519_key, 4096)
    assert len(token.encode("ascii")) == 4096
    expect(present(token), "accepted")
    assert len(decoding_spy) == 3


def test_a_code_of_4097_bytes_is_malformed_before_any_decoding(present, make_token, ed25519_key, decoding_spy):
    token = sized_token(make_token, ed25519_key, 4097)
    decision = expect(present(token), "malformed")
    assert "4096" in decision.message
    assert decoding_spy == []


@pytest.mark.parametrize("size", [4097, 10 * 1024 * 1024])
def test_long_garbage_is_malformed(present, size):
    expect(present("A" * size), "malformed")


def test_non_ascii_within_4096_characters_but_over_4096_bytes_is_malformed(present, valid):
    token = valid + "é" * (4096 - len(valid))
    assert len(token) <= 4096 < len(token.encode("utf-8"))
    expect(present(token), "malformed")


@pytest.mark.parametrize(
    "reshape",
    [
        pytest.param(lambda t: t.rsplit(".", 1)[0], id="two-segments"),
        pytest.param(lambda t: t.split(".")[0], id="one-segment"),
        pytest.param(lambda t: t + ".AAAA", id="four-segments"),
        pytest.param(lambda t: t + ".", id="trailing-dot"),
        pytest.param(lambda t: "." + t, id="leading-dot"),
        pytest.param(lambda t: t.replace(".", "..", 1), id="empty-segment"),
        pytest.param(lambda t: t.rsplit(".", 1)[0] + ".", id="empty-signature"),
        pytest.param(lambda t: "", id="empty"),
    ],
)
def test_anything_but_three_segments_is_malformed(present, valid, reshape):
    expect(present(reshape(valid)), "malformed")


@pytest.mark.parametrize("segment", [0, 1, 2])
@pytest.mark.parametrize("padding", ["=", "==", "==="])
def test_padding_is_malformed(present, valid, segment, padding):
    parts = valid.split(".")
    parts[segment] += padding
    expect(present(".".join(parts)), "malformed")


@pytest.mark.parametrize(
    "reshape",
    [
        pytest.param(lambda t: " " + t, id="leading-space"),
        pytest.param(lambda t: t + " ", id="trailing-space"),
        pytest.param(lambda t: t + "\n", id="trailing-newline"),
        pytest.param(lambda t: t + "\r\n", id="trailing-crlf"),
        pytest.param(lambda t: t.replace(".", ". ", 1), id="space-after-dot"),
        pytest.param(lambda t: t[:20] + "\t" + t[20:], id="inner-tab"),
        pytest.param(lambda t: t[:20] + "\n" + t[20:], id="inner-newline"),
        pytest.param(lambda t: t + "\u00a0", id="no-break-space"),
        pytest.param(lambda t: t[:20] + "\u200b" + t[20:], id="zero-width-space"),
    ],
)
def test_whitespace_is_malformed(present, valid, reshape):
    expect(present(reshape(valid)), "malformed")


def test_standard_base64_alphabet_is_malformed(present, make_token):
    # Re-sign over the standard-alphabet text so that only the alphabet is wrong.
    token = next(t for t in (make_token() for _ in range(200)) if "-" in t or "_" in t)
    expect(present(token.translate(str.maketrans("-_", "+/"))), "malformed")


def test_plus_and_slash_in_a_signed_segment_are_malformed(present, ed25519_key):
    # Claims whose base64url holds - or _, written with + and / and signed as
    # written: a lax decoder (b64decode with altchars) would accept the code.
    claims = next(c for c in (b64json(default_claims(x="?" * n)) for n in range(12)) if "-" in c or "_" in c)
    standard = claims.translate(str.maketrans("-_", "+/"))
    expect(present(signed(ed25519_key, header_segment(ed25519_key), claims)), "accepted")
    expect(present(signed(ed25519_key, header_segment(ed25519_key), standard)), "malformed")


def test_a_signature_segment_of_impossible_length_is_malformed(present, valid):
    head, claims, signature = valid.split(".")
    assert len(signature[:-1]) % 4 == 1  # no byte string encodes to this length
    expect(present(f"{head}.{claims}.{signature[:-1]}"), "malformed")


def test_non_canonical_signature_segment_is_malformed(present, valid):
    head, claims, signature = valid.split(".")
    assert len(signature) % 4 == 2  # 64 bytes: the last character carries 4 unused bits
    expect(present(f"{head}.{claims}.{set_unused_bits(signature)}"), "malformed")


def test_non_canonical_claims_segment_is_malformed(present, ed25519_key):
    head = header_segment(ed25519_key)
    text = json.dumps(default_claims(), separators=(",", ":"))
    while len(text) % 3 == 0:  # trailing JSON whitespace until there are unused bits
        text += " "
    claims = set_unused_bits(b64json(text))
    # Validly signed over the non-canonical text: only canonicity is wrong.
    expect(present(signed(ed25519_key, head, claims)), "malformed")


def test_non_canonical_header_segment_is_malformed(present, ed25519_key):
    text = json.dumps({"alg": "EdDSA", "typ": "rsc+jwt", "kid": ed25519_key.kid}, separators=(",", ":"))
    while len(text) % 3 == 0:
        text += " "
    head = set_unused_bits(b64json(text))
    expect(present(signed(ed25519_key, head, b64json(default_claims()))), "malformed")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b'"\xed\xa0\x80"', id="utf8-encoded-surrogate"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"rsc+jwt"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"1", id="number"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b'{"alg":"EdDSA"} x', id="trailing-data"),
        pytest.param("\ufeff{}".encode(), id="bom"),
        pytest.param(b"{'alg':'EdDSA'}", id="single-quotes"),
    ],
)
@pytest.mark.parametrize("part", ["header", "claims"])
def test_a_segment_that_is_not_a_json_object_is_malformed(present, make_token, raw, part):
    expect(present(make_token(**{part: raw})), "malformed")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_in_the_claims_are_malformed(present, make_token, constant):
    text = json.dumps(default_claims(), separators=(",", ":"))[:-1] + f',"x":{constant}}}'
    expect(present(make_token(claims=text)), "malformed")


def test_duplicate_header_members_are_malformed(present, make_token, ed25519_key):
    kid = ed25519_key.kid
    expect(present(make_token(header=f'{{"alg":"EdDSA","typ":"rsc+jwt","kid":"{kid}","kid":"{kid}"}}')), "malformed")
    expect(present(make_token(header=f'{{"alg":"EdDSA","alg":"EdDSA","typ":"rsc+jwt","kid":"{kid}"}}')), "malformed")


@pytest.mark.parametrize("member", ["sub", "exp", "scp", "jti"])
def test_duplicate_claims_are_malformed(present, make_token, member):
    claims = default_claims()
    text = json.dumps(claims, separators=(",", ":"))[:-1] + f',"{member}":{json.dumps(claims[member])}}}'
    expect(present(make_token(claims=text)), "malformed")


def test_duplicate_members_nested_in_an_unknown_claim_are_malformed(present, make_token):
    text = json.dumps(default_claims(), separators=(",", ":"))[:-1] + ',"x":{"a":1,"a":2}}'
    expect(present(make_token(claims=text)), "malformed")


# -- rule 2: the header --------------------------------------------------------


@pytest.mark.parametrize(
    "member, value",
    [
        ("jku", "https://attacker.example/jwks.json"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("jwk", {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
        ("x5c", ["MIIB"]),
        ("crit", ["exp"]),
        ("cty", "JWT"),
        ("b64", False),
        ("zip", "DEF"),
    ],
)
def test_extra_header_members_are_malformed(present, make_token, member, value):
    expect(present(make_token(header={member: value})), "malformed")


@pytest.mark.parametrize("typ", [DROP, "JWT", "jwt", "rsc+JWT", "application/rsc+jwt", "", None, 1, ["rsc+jwt"]])
def test_typ_missing_or_other_is_wrong_type(present, make_token, typ):
    expect(present(make_token(header={"typ": typ})), "wrong_type")


@pytest.mark.parametrize(
    "alg", ["none", "None", "HS256", "RS256", "ES384", "Ed25519", "eddsa", "", None, 1, ["EdDSA"], DROP]
)
def test_alg_outside_the_allow_list_is_alg_not_allowed(present, make_token, alg):
    expect(present(make_token(header={"alg": alg})), "alg_not_allowed")


def test_alg_allowed_by_the_contract_but_not_by_this_verifier(present, make_token, key_set, es256_key):
    eddsa_only = OfflineVerifier(key_set, issuer=ISSUER, algorithms=["EdDSA"])
    expect(present(make_token(key=es256_key), via=eddsa_only), "alg_not_allowed")
    expect(present(make_token(), via=eddsa_only), "accepted")


def test_alg_other_than_the_named_keys_is_alg_not_allowed(present, make_token, ed25519_key, es256_key):
    expect(present(make_token(key=ed25519_key, header={"kid": es256_key.kid})), "alg_not_allowed")
    expect(present(make_token(key=es256_key, header={"kid": ed25519_key.kid})), "alg_not_allowed")


@pytest.mark.parametrize("kid", ["AAAAAAAAAAA", "", DROP, None, 1, ["kid"], {"kid": "x"}, True])
def test_kid_unknown_missing_or_not_a_string_is_unknown_key(present, make_token, ed25519_key, kid):
    expect(present(make_token(header={"kid": kid})), "unknown_key")


def test_kid_of_a_key_not_in_this_key_set_is_unknown_key(present, make_token, key_set, ed25519_key, es256_key):
    only_es256 = OfflineVerifier(KeySet.from_jwks({"keys": [es256_key.jwk]}), issuer=ISSUER)
    expect(present(make_token(key=ed25519_key), via=only_es256), "unknown_key")


# -- rule 3: the signature -----------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
@pytest.mark.parametrize("byte", [0, 31, 32, 63])
def test_a_flipped_signature_byte_is_bad_signature(present, make_token, ed25519_key, es256_key, alg, byte):
    token = make_token(key=ed25519_key if alg == "EdDSA" else es256_key)
    head, claims, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[byte] ^= 0x01
    expect(present(f"{head}.{claims}.{b64url_encode(bytes(raw))}"), "bad_signature")


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
@pytest.mark.parametrize(
    "signature",
    [b"\x00", b"\x00" * 63, b"\x00" * 65, b"\x00" * 64, b"\xff" * 64, b"\x00" * 32 + b"\x01" * 32, b"\x01" * 128],
    ids=["1", "63", "65", "zeros", "ones", "r-zero", "128"],
)
def test_a_signature_of_the_wrong_shape_is_bad_signature(present, ed25519_key, es256_key, alg, signature):
    key = ed25519_key if alg == "EdDSA" else es256_key
    token = f"{header_segment(key)}.{b64json(default_claims())}.{b64url_encode(signature)}"
    expect(present(token), "bad_signature")


def test_a_signature_by_another_key_with_the_same_kid_is_bad_signature(present, make_token, ed25519_key):
    impostor = make_test_key("EdDSA")
    impostor.jwk = {**impostor.jwk, "kid": ed25519_key.kid}
    expect(present(make_token(key=impostor)), "bad_signature")


def test_a_signature_spliced_from_another_code_is_bad_signature(present, make_token):
    first, second = make_token(), make_token(sub="AAAAAAAAAAAAAAAA")
    expect(present(first.rsplit(".", 1)[0] + "." + second.rsplit(".", 1)[1]), "bad_signature")


# -- rule 4: claims ------------------------------------------------------------


@pytest.mark.parametrize("claim", ["iss", "sub", "iat", "exp", "jti", "scp"])
def test_a_missing_required_claim_is_malformed(present, make_token, claim):
    expect(present(make_token(**{claim: DROP})), "malformed")


@pytest.mark.parametrize(
    "claim, value",
    [
        ("iat", True),
        ("iat", False),
        ("exp", True),
        ("exp", str(NOW + 60)),
        ("iat", str(NOW)),
        ("exp", float(NOW + 60)),
        ("iat", float(NOW)),
        ("exp", None),
        ("iat", [NOW]),
        ("iss", 1),
        ("iss", None),
        ("sub", ""),
        ("sub", 12345),
        ("sub", ["q1w2e3r4t5y6u7i8"]),
        ("jti", ""),
        ("jti", 7),
        # Strings no usage record can hold: PostgreSQL refuses NUL (a lone surrogate fails the JSON already).
        ("sub", "q1w2e3r4\x00t5y6u7i"),
        ("sub", "q1w2e3r4\ud800t5y6u7i"),
        ("jti", "j\x00ti"),
        ("jti", "\udfffjti"),
        ("scp", "transit"),
        ("scp", ["transit", 1]),
        ("scp", ["transit", None]),
        ("scp", ["transit", ["venue"]]),
        ("scp", {"transit": True}),
        ("scp", None),
    ],
)
def test_a_claim_of_the_wrong_type_is_malformed(present, make_token, claim, value):
    expect(present(make_token(**{claim: value})), "malformed")


@pytest.mark.parametrize(
    "claim, written",
    [
        ("exp", f"{NOW + 60}.0"),
        ("exp", f"{NOW + 60}e0"),
        ("exp", f"{NOW + 60}E+0"),
        ("exp", "1.79500006e9"),
        ("exp", f"{(NOW + 60) * 10}e-1"),
        ("iat", f"{NOW}.0"),
        ("iat", "1795e6"),
    ],
)
def test_a_number_written_with_a_fraction_or_exponent_is_malformed(present, make_token, claim, written):
    claims = default_claims()
    text = json.dumps(claims, separators=(",", ":")).replace(f'"{claim}":{claims[claim]}', f'"{claim}":{written}')
    assert written in text
    assert json.loads(text)[claim] == claims[claim]  # the same value, written otherwise
    expect(present(make_token(claims=text)), "malformed")


@pytest.mark.parametrize("lifetime", [0, 301, -1, -60, 3600])
def test_a_lifetime_outside_1_to_300_is_malformed(present, make_token, lifetime):
    expect(present(make_token(exp=NOW + lifetime)), "malformed")


@pytest.mark.parametrize("lifetime", [1, 15, 300])
def test_a_lifetime_of_1_to_300_is_accepted(present, make_token, lifetime):
    expect(present(make_token(exp=NOW + lifetime)), "accepted")


@pytest.mark.parametrize(
    "issuer",
    ["urn:codeservice:other", "urn:codeservice:dev ", "URN:CODESERVICE:DEV", ""],  # "": a string, not malformed
)
def test_another_issuer_is_issuer_mismatch(present, make_token, issuer):
    expect(present(make_token(iss=issuer)), "issuer_mismatch")


def test_the_verifier_expects_its_configured_issuer(present, make_token, key_set):
    other = OfflineVerifier(key_set, issuer="urn:codeservice:prod")
    expect(present(make_token(), via=other), "issuer_mismatch")
    expect(present(make_token(iss="urn:codeservice:prod"), via=other), "accepted")


@pytest.mark.parametrize(
    "after_exp, code",
    [(-1, "accepted"), (0, "accepted"), (10, "accepted"), (10.5, "expired"), (11, "expired"), (3600, "expired")],
)
def test_expiry_with_the_default_leeway_of_10_seconds(present, make_token, after_exp, code):
    expect(present(make_token(), now=NOW + 60 + after_exp), code)


@pytest.mark.parametrize(
    "ahead, code", [(0, "accepted"), (10, "accepted"), (11, "not_yet_valid"), (300, "not_yet_valid")]
)
def test_issued_at_with_the_default_leeway_of_10_seconds(present, make_token, ahead, code):
    expect(present(make_token(now=NOW + ahead)), code)


@pytest.mark.parametrize(
    "leeway, issued_at, clock, code",
    [
        (0, NOW, NOW, "accepted"),
        (0, NOW, NOW + 60, "accepted"),
        (0, NOW, NOW + 61, "expired"),
        (0, NOW + 1, NOW, "not_yet_valid"),
        (30, NOW, NOW + 90, "accepted"),
        (30, NOW, NOW + 91, "expired"),
        (30, NOW + 30, NOW, "accepted"),
        (30, NOW + 31, NOW, "not_yet_valid"),
    ],
)
def test_a_custom_leeway(present, make_token, key_set, leeway, issued_at, clock, code):
    configured = OfflineVerifier(key_set, issuer=ISSUER, leeway=leeway)
    expect(present(make_token(now=issued_at), now=clock, via=configured), code)


@pytest.mark.parametrize("leeway", [-1, 301, 1.5, True, "10"])
def test_an_unusable_leeway_is_a_configuration_error(key_set, leeway):
    with pytest.raises(ConfigurationError):
        OfflineVerifier(key_set, leeway=leeway)


# -- rule 5: the scene ---------------------------------------------------------


@pytest.mark.parametrize("scopes", [["clinic"], ["clinic", "venue"], [], ["Transit"], ["transit "]])
def test_a_scene_not_in_scp_is_scene_not_allowed(present, make_token, scopes):
    decision = expect(present(make_token(scp=scopes)), "scene_not_allowed")
    assert decision.sub == SUB


# -- rule 6: revocation --------------------------------------------------------


def test_a_revoked_resident_is_revoked(present, make_token, key_set):
    revoking = OfflineVerifier(key_set, issuer=ISSUER, revoked=[SUB])
    decision = expect(present(make_token(), via=revoking), "revoked")
    assert decision.sub == SUB
    expect(present(make_token(sub="AAAAAAAAAAAAAAAA"), via=revoking), "accepted")


def test_set_revocations_replaces_the_list(present, make_token, verifier):
    verifier.set_revocations([SUB], fetched_at=NOW)
    expect(present(make_token()), "revoked")
    verifier.set_revocations([], fetched_at=NOW)
    expect(present(make_token()), "accepted")


def test_revoked_is_checked_after_the_scene(present, make_token, verifier):
    verifier.set_revocations([SUB], fetched_at=NOW)
    expect(present(make_token(scp=["clinic"])), "scene_not_allowed")


def test_revoked_is_checked_before_replay(present, make_token, verifier):
    token = make_token()
    expect(present(token), "accepted")
    verifier.set_revocations([SUB], fetched_at=NOW)
    expect(present(token), "revoked")


# -- rule 7: replay ------------------------------------------------------------


def test_a_code_accepted_once_is_replayed(present, make_token):
    token = make_token()
    expect(present(token), "accepted")
    decision = expect(present(token, now=NOW + 1), "replayed")
    assert (decision.sub, decision.exp) == (SUB, NOW + 60)


def test_replay_spans_scenes(present, make_token):
    token = make_token()
    expect(present(token, scene="clinic"), "accepted")
    expect(present(token, scene="transit"), "replayed")


def test_replay_is_checked_before_the_scenes_rules(present, make_token):
    token = make_token()
    expect(present(token), "accepted")  # opens a trip: a new entry would be passback
    expect(present(token), "replayed")


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param({"context": {"station": "人民广场"}, "code": "bad_context"}, id="bad_context"),
        pytest.param({"context": {"station": "人民广场", "direction": "out"}, "code": "no_entry"}, id="scene-rule"),
        pytest.param({"scene": "nowhere", "code": "unknown_scene"}, id="unknown_scene"),
        pytest.param({"now": NOW - 11, "code": "not_yet_valid"}, id="not_yet_valid"),
    ],
)
def test_a_refused_presentation_does_not_burn_the_code(present, make_token, refusal):
    token = make_token()
    refusal = dict(refusal)
    code = refusal.pop("code")
    expect(present(token, **refusal), code)
    expect(present(token), "accepted")


def test_a_scene_not_allowed_presentation_does_not_burn_the_code(present, make_token):
    token = make_token(scp=["transit"])
    expect(present(token, scene="clinic"), "scene_not_allowed")
    expect(present(token), "accepted")


# -- rule 8 and section 3: scenes ---------------------------------------------


@pytest.mark.parametrize("scene", ["nowhere", "Transit", "transit ", "", None, 1, ["transit"]])
def test_an_unknown_scene_is_checked_before_the_code(present, scene):
    decision = expect(present("garbage", scene=scene, context={}), "unknown_scene")
    assert decision.scene is None


@pytest.mark.parametrize(
    "context",
    [
        {},
        {"station": "人民广场"},
        {"station": "人民广场", "direction": "up"},
        {"station": 1, "direction": "in"},
        [],
        "x",
        1,
    ],
)
def test_a_bad_context_is_checked_before_the_code(present, context):
    decision = expect(present("garbage", context=context), "bad_context")
    assert decision.scene == "transit"


def test_a_context_that_is_not_utf8_json_is_bad_context(present, make_token):
    # A lone surrogate (JSON allows "\ud800") cannot be written to a UTF-8 usage record.
    expect(present(make_token(), context={"station": "\ud800", "direction": "in"}), "bad_context")
    # Nor a NUL: PostgreSQL's jsonb and the service's upload refuse it (an offline gate's record would be stuck).
    expect(present(make_token(), context={"station": "x\x00y", "direction": "in"}), "bad_context")
    expect(present(make_token(), context={"station": "x", "direction": "in", "line": "\x00"}), "bad_context")
    expect(present(make_token(), context={"station": "x", "direction": "in", "line": {1, 2}}), "bad_context")


def test_an_unknown_scene_is_checked_before_a_bad_context(present):
    expect(present("garbage", scene="nowhere", context=[]), "unknown_scene")


def test_a_scene_rule_gives_its_own_code(present, make_token, transit_in):
    expect(present(make_token()), "accepted")
    decision = expect(present(make_token()), "passback")
    assert decision.sub == SUB and decision.detail["station"] == transit_in["station"]


# -- claims a verifier does not know; the category -----------------------------


def test_unknown_claims_are_ignored(present, make_token):
    extras = {"x-note": {"a": [1, 2.5, None, True]}, "ver": 2, "note": "", "n": 1.5}
    expect(present(make_token(**extras)), "accepted")


@pytest.mark.parametrize("category", ["senior", "student", "disabled", "child"])
def test_a_known_category_is_accepted(present, make_token, category):
    expect(present(make_token(cat=category)), "accepted")


@pytest.mark.parametrize("category", ["admin", "", "Senior", "senior ", 1, True, ["senior"], {"senior": 1}])
def test_an_invalid_category_is_malformed(present, make_token, category):
    expect(present(make_token(cat=category)), "malformed")


# -- never an exception --------------------------------------------------------


@pytest.mark.parametrize(
    "token", [None, b"a.b.c", bytearray(b"a.b.c"), 1, 1.5, ["a", "b", "c"], {"token": "x"}, object()]
)
def test_a_token_that_is_not_text_is_malformed(present, token):
    decision = expect(present(token), "malformed")
    assert (decision.sub, decision.jti, decision.exp) == (None, None, None)


def test_the_bytes_of_a_valid_code_are_malformed(present, valid):
    expect(present(valid.encode("ascii")), "malformed")


# -- what a decision reports ---------------------------------------------------


def test_nothing_unverified_is_reported(present, make_token, ed25519_key):
    head, _claims, signature = make_token().split(".")
    forged = f"{head}.{b64json(default_claims(sub='AAAAAAAAAAAAAAAA'))}.{signature}"
    decision = expect(present(forged), "bad_signature")
    assert (decision.sub, decision.jti, decision.exp) == (None, None, None)
    # Validly signed, but a claim of the wrong type: still nothing is reported.
    decision = expect(present(make_token(iat=True)), "malformed")
    assert (decision.sub, decision.jti, decision.exp) == (None, None, None)
    decision = expect(present(make_token(exp=NOW + 301)), "malformed")
    assert (decision.sub, decision.jti, decision.exp) == (None, None, None)


@pytest.mark.parametrize(
    "overrides, now, code",
    [
        ({"iss": "urn:other"}, NOW, "issuer_mismatch"),
        ({}, NOW + 71, "expired"),
        ({}, NOW - 11, "not_yet_valid"),
        ({"scp": ["clinic"]}, NOW, "scene_not_allowed"),
    ],
)
def test_a_verified_code_is_reported_in_its_refusal(present, make_token, overrides, now, code):
    token = make_token(jti="AAAAAAAAAAA", **overrides)
    decision = expect(present(token, now=now), code)
    assert (decision.sub, decision.jti, decision.exp) == (SUB, "AAAAAAAAAAA", NOW + 60)


# -- the order of the rules: the first that fails gives the code ---------------


@pytest.mark.parametrize(
    "header, claims, tamper, code",
    [
        ({"jku": "x", "typ": "JWT"}, {}, False, "malformed"),
        ({"typ": "JWT", "alg": "none"}, {}, False, "wrong_type"),
        ({"alg": "none", "kid": "AAAAAAAAAAA"}, {}, False, "alg_not_allowed"),
        ({"kid": "AAAAAAAAAAA"}, {}, True, "unknown_key"),
        ({}, {"iat": True}, True, "bad_signature"),
        ({}, {"iss": "urn:other", "exp": NOW + 301}, False, "malformed"),
        ({}, {"iss": "urn:other", "exp": NOW - 100, "iat": NOW - 150}, False, "issuer_mismatch"),
        ({}, {"exp": NOW - 100, "iat": NOW - 150, "scp": ["clinic"]}, False, "expired"),
        ({}, {"iat": NOW + 100, "exp": NOW + 150, "scp": ["clinic"]}, False, "not_yet_valid"),
    ],
)
def test_the_first_failing_rule_gives_the_code(present, make_token, header, claims, tamper, code):
    token = make_token(header=header, **claims)
    if tamper:
        head, body, signature = token.split(".")
        token = f"{head}.{body}.{signature[:10]}{'B' if signature[10] == 'A' else 'A'}{signature[11:]}"
    expect(present(token), code)


# -- the codes are the contract's ----------------------------------------------


def test_every_decision_code_is_the_contracts():
    codes = SceneRegistry.from_entry_points().rejection_codes()  # the rules' and the installed scenes' own
    assert len(codes) == len(set(codes))
    assert set(codes) | {"accepted"} == CONTRACT_CODES


# -- section 5: one usage record per decision ----------------------------------


def test_every_decision_yields_exactly_one_usage_record(present, make_token, verifier):
    token = make_token()
    presentations = [
        lambda: present(token),
        lambda: present(token),
        lambda: present("garbage"),
        lambda: present(make_token(), context={"station": "x"}),
        lambda: present(make_token(), scene="nowhere"),
        lambda: present(make_token()),
        lambda: present(make_token(), scene="clinic", now=NOW + 1.25),
        lambda: present(None),
    ]
    expected_codes = [
        "accepted", "replayed", "malformed", "bad_context", "unknown_scene", "passback", "accepted", "malformed",
    ]  # fmt: skip
    for count, (presentation, code) in enumerate(zip(presentations, expected_codes, strict=True), start=1):
        decision = expect(presentation(), code)
        records = verifier.pending_records()
        assert len(records) == count
        record = records[-1]
        assert set(record) == RECORD_KEYS
        assert str(uuid.UUID(record["id"])) == record["id"] == decision.record_id
        assert RFC3339_UTC.match(record["decided_at"]), record["decided_at"]
        assert (record["venue_id"], record["device_id"]) == ("museum-1", "gate-1")
        assert {k: record[k] for k in ("scene", "sub", "jti", "ok", "code", "detail")} == {
            k: getattr(decision, k) for k in ("scene", "sub", "jti", "ok", "code", "detail")
        }
    records = verifier.pending_records()
    assert records[0]["decided_at"] == "2026-11-18T11:06:40.000Z"  # NOW
    assert records[6]["decided_at"] == "2026-11-18T11:06:41.250Z"
    assert len({record["id"] for record in records}) == len(records)


@pytest.mark.parametrize("scene", ALL_SCENES)
def test_an_accepted_records_detail_is_the_scenes(present, make_token, verifier, scene):
    decision = expect(present(make_token(), scene=scene), "accepted")
    (record,) = verifier.pending_records()
    assert record["detail"] == decision.detail and record["detail"]
