"""Every attack of ``tests/vectors/attacks.md``, as a concrete token.

One test (or one parametrized group) per attack, named ``test_attack_NN_…``
with ``Attack #NN`` in its docstring. Each feeds a crafted token to the
offline verifier at a transit gate and asserts the exact decision code that
the rule order of contract section 2 gives (the first failing rule wins).
Where a token needs a valid signature over crafted content it is signed with
the fixture keys, so the test reaches the rule it is about and not an
earlier one. The last test checks that attacks.md and this module agree.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from helpers import (
    DROP,
    ISSUER,
    NOW,
    VECTORS,
    TestKey,
    b64json,
    default_claims,
    make_test_key,
)

from verifiers import KeySet, OfflineVerifier
from verifiers.decision import Decision
from verifiers.errors import ConfigurationError, KeySetError
from verifiers.jose import b64url_decode, b64url_encode

ATTACKS_MD = VECTORS / "attacks.md"

# The order of the P-256 group and of the Ed25519 group.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ED25519_L = 2**252 + 27742317777372353535851937790883648493
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# Rules 1-3 fail before anything in the token is trusted: no sub, no jti.
UNVERIFIED_CODES = {"malformed", "wrong_type", "alg_not_allowed", "unknown_key", "bad_signature"}


# -- helpers ------------------------------------------------------------------


def present(verifier: OfflineVerifier, token: object, context: dict[str, str]) -> Decision:
    """The token at a transit gate, at the fixed clock."""
    return verifier.verify(token, "transit", context, now=NOW)


def assert_code(decision: Decision, code: str) -> None:
    assert decision.code == code, f"got {decision.code!r} ({decision.message}), expected {code!r}"
    assert decision.ok is (code == "accepted")
    if code in UNVERIFIED_CODES:
        assert (decision.sub, decision.jti, decision.exp) == (None, None, None), "unverified data reported"


def forge(header: Any, claims: Any, sign: Callable[[bytes], bytes]) -> str:
    """A compact JWS of any header and claims (dict, or raw str/bytes), signed by ``sign``."""
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    return f"{signing_input}.{b64url_encode(sign(signing_input.encode('ascii')))}"


def parts(token: str) -> tuple[str, str, str]:
    header, claims, signature = token.split(".")
    return header, claims, signature


def resign(token: str, signature: bytes) -> str:
    header, claims, _ = parts(token)
    return f"{header}.{claims}.{b64url_encode(signature)}"


def signature_of(token: str) -> bytes:
    return b64url_decode(parts(token)[2])


def claims_json(**overrides: Any) -> str:
    return json.dumps(default_claims(NOW, **overrides), separators=(",", ":"))


def header_of(key: TestKey, **members: Any) -> dict[str, Any]:
    header = {"alg": key.alg, "typ": "rsc+jwt", "kid": key.kid, **members}
    return {name: value for name, value in header.items() if value is not DROP}


def hs256(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda signing_input: hmac.new(secret, signing_input, hashlib.sha256).digest()


def member_id(value: Any) -> str:
    return "DROP" if value is DROP else repr(value)


def noncanonical(segment: str) -> str:
    """The same bytes to a lenient decoder: one unused trailing bit set."""
    assert len(segment) % 4 in (2, 3), segment
    return segment[:-1] + B64URL_ALPHABET[B64URL_ALPHABET.index(segment[-1]) | 1]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a URL or a socket fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


# -- the attacks ---------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", DROP, None, ""], ids=member_id)
def test_attack_01_alg_none(alg: Any, make_token: Callable[..., str], verifier: OfflineVerifier,
                            transit_in: dict[str, str]) -> None:
    """Attack #1: alg none (any case, absent, null, empty); the unsigned form h.p.

    With a valid typ and kid and a signature that is even valid Ed25519 over
    the input, the allow-list (rule 2) refuses the algorithm; without a
    signature segment the token is not three segments (rule 1).
    """
    signed = make_token(header={"alg": alg})
    header, claims, _ = parts(signed)

    assert_code(present(verifier, signed, transit_in), "alg_not_allowed")
    assert_code(present(verifier, f"{header}.{claims}.", transit_in), "malformed")


SIGNATURE_SIZE_CASES = [
    # (key fixture, how the signature is changed, decision)
    ("ed25519_key", lambda t: ".".join(parts(t)[:2]) + ".", "malformed"),  # empty third segment
    ("ed25519_key", lambda t: ".".join(parts(t)[:2]), "malformed"),  # two segments
    ("es256_key", lambda t: ".".join(parts(t)[:2]) + ".", "malformed"),
    ("ed25519_key", lambda t: ".".join(parts(t)[:2]) + ".null", "bad_signature"),  # 3 bytes
    ("ed25519_key", lambda t: resign(t, b"\0"), "bad_signature"),
    ("ed25519_key", lambda t: resign(t, bytes(64)), "bad_signature"),
    ("ed25519_key", lambda t: resign(t, signature_of(t)[:63]), "bad_signature"),
    ("ed25519_key", lambda t: resign(t, signature_of(t) + b"\0"), "bad_signature"),
    ("es256_key", lambda t: resign(t, signature_of(t)[:63]), "bad_signature"),
    ("es256_key", lambda t: resign(t, signature_of(t) + b"\0"), "bad_signature"),
    ("es256_key", lambda t: resign(t, b"\0" + signature_of(t)), "bad_signature"),  # r with a leading zero
    ("es256_key", lambda t: resign(t, signature_of(t)[:32]), "bad_signature"),  # r alone
    ("es256_key", lambda t: resign(t, signature_of(t) * 2), "bad_signature"),
]


@pytest.mark.parametrize(
    ("key_name", "change", "code"),
    SIGNATURE_SIZE_CASES,
    ids=[
        "ed25519-empty-segment", "ed25519-two-segments", "es256-empty-segment", "ed25519-null",
        "ed25519-1-byte", "ed25519-64-zero-bytes", "ed25519-63-bytes", "ed25519-65-bytes",
        "es256-63-bytes", "es256-65-bytes", "es256-65-bytes-leading-zero", "es256-32-bytes",
        "es256-128-bytes",
    ],
)
def test_attack_02_null_or_missing_signature(
    key_name: str, change: Callable[[str], str], code: str, request: pytest.FixtureRequest,
    make_token: Callable[..., str], verifier: OfflineVerifier, transit_in: dict[str, str],
) -> None:
    """Attack #2: empty or missing signature; any signature that is not exactly 64 bytes."""
    token = make_token(key=request.getfixturevalue(key_name))
    assert_code(present(verifier, token, transit_in), "accepted")  # the untouched code, for contrast

    assert_code(present(verifier, change(token), transit_in), code)


def _public_key_forms(key: TestKey) -> dict[str, bytes]:
    public = key.private_key.public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    forms = {
        "pem": public.public_bytes(serialization.Encoding.PEM, spki),
        "der": public.public_bytes(serialization.Encoding.DER, spki),
        "openssh": public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
        "jwk-json": json.dumps(key.jwk).encode(),
        "jwk-json-compact": json.dumps(key.jwk, separators=(",", ":")).encode(),
        "x": b64url_decode(key.jwk["x"]),
    }
    if key.alg == "EdDSA":
        forms["raw"] = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        forms["x962"] = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    return forms


@pytest.mark.parametrize("key_name", ["ed25519_key", "es256_key"])
def test_attack_03_hs256_with_the_public_key_as_secret(
    key_name: str, request: pytest.FixtureRequest, verifier: OfflineVerifier, transit_in: dict[str, str]
) -> None:
    """Attack #3: key confusion, HS256 keyed with the public key (PEM, DER, OpenSSH, JWK, raw)."""
    key: TestKey = request.getfixturevalue(key_name)
    for form, secret in _public_key_forms(key).items():
        token = forge(header_of(key, alg="HS256"), claims_json(), hs256(secret))

        decision = present(verifier, token, transit_in)

        assert decision.code == "alg_not_allowed", form
        assert_code(decision, "alg_not_allowed")


@pytest.mark.parametrize(
    ("header_alg", "kid_of", "signed_by"),
    [
        ("ES256", "ed25519_key", "es256_key"),  # a valid ES256 signature, the Ed25519 key's kid
        ("EdDSA", "es256_key", "ed25519_key"),  # a valid EdDSA signature, the P-256 key's kid
        ("ES256", "ed25519_key", "ed25519_key"),
        ("EdDSA", "es256_key", "es256_key"),
    ],
)
def test_attack_04_header_alg_not_the_keys_alg(
    header_alg: str, kid_of: str, signed_by: str, request: pytest.FixtureRequest,
    make_token: Callable[..., str], verifier: OfflineVerifier, key_set: KeySet, transit_in: dict[str, str],
) -> None:
    """Attack #4: the header's alg is on the allow-list but is not the alg of the key kid names."""
    named: TestKey = request.getfixturevalue(kid_of)
    token = make_token(key=request.getfixturevalue(signed_by), header={"alg": header_alg, "kid": named.kid})

    assert_code(present(verifier, token, transit_in), "alg_not_allowed")

    # And an alg the key would take, but this verifier's allow-list does not.
    eddsa_only = OfflineVerifier(key_set, issuer=ISSUER, algorithms=["EdDSA"])
    es256_code = make_token(key=request.getfixturevalue("es256_key"))
    assert_code(present(eddsa_only, es256_code, transit_in), "alg_not_allowed")


@pytest.mark.parametrize("signed_by", ["fixture-key", "attacker-key"])
@pytest.mark.parametrize("member", ["jwk", "x5c", "x5t", "x5t#S256"])
def test_attack_05_embedded_jwk_header(
    member: str, signed_by: str, ed25519_key: TestKey, make_token: Callable[..., str],
    verifier: OfflineVerifier, transit_in: dict[str, str],
) -> None:
    """Attack #5: the attacker's own key (or certificate) embedded in the header.

    Signed by the fixture key, the signature is valid and only the extra
    member is wrong; signed by the attacker's embedded key, the verifier must
    still never use it. Either way rule 2 (extra member) comes first.
    """
    attacker = make_test_key("EdDSA")
    values = {
        "jwk": attacker.jwk,
        "x5c": [base64.b64encode(b"not really a certificate").decode()],
        "x5t": b64url_encode(hashlib.sha1(b"cert").digest()),  # a made-up thumbprint
        "x5t#S256": b64url_encode(hashlib.sha256(b"cert").digest()),
    }
    key = ed25519_key if signed_by == "fixture-key" else attacker
    token = make_token(key=key, header={member: values[member], "kid": ed25519_key.kid})

    assert_code(present(verifier, token, transit_in), "malformed")


@pytest.mark.parametrize(
    "members",
    [
        {"jku": "https://attacker.example/jwks.json"},
        {"jku": "http://127.0.0.1:1/jwks.json"},
        {"jku": "file:///etc/passwd"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"jku": "https://attacker.example/jwks.json", "kid": "attacker-key"},
    ],
    ids=["jku-https", "jku-loopback", "jku-file", "x5u", "jku-unknown-kid"],
)
def test_attack_06_jku_x5u_header(
    members: dict[str, str], no_network: None, make_token: Callable[..., str],
    verifier: OfflineVerifier, transit_in: dict[str, str],
) -> None:
    """Attack #6: jku/x5u pointing at an attacker's key set: malformed, never fetched."""
    token = make_token(header=members)

    assert_code(present(verifier, token, transit_in), "malformed")


def _near_kid(change: str) -> Callable[[TestKey], str]:
    """A kid near the real one: it must name no key (exact lookup)."""

    def near(key: TestKey) -> str:
        kid = key.kid
        value = {
            "space-after": kid + " ",
            "space-before": " " + kid,
            "nul-after": kid + "\0",
            "swapped-case": kid.swapcase(),
            "prefix": kid[:-1],
            "with-padding": kid + "=",
        }[change]
        assert value != kid
        return value

    return near


KID_INJECTIONS: dict[str, Any] = {
    "path-traversal": "../../../../dev/null",
    "dev-null": "/dev/null",
    "etc-passwd": "../../../../../../etc/passwd",
    "sql-union": "x' UNION SELECT '1';--",
    "sql-or": "' OR '1'='1",
    "shell-pipe": "|sleep 10",
    "shell-subst": "$(sleep 10)",
    "shell-backtick": "`sleep 10`",
    "blank": "",
    "space": " ",
    "overlong": "k" * 1000,
    "int": 0,
    "null": None,
    "true": True,
    "list": ["kid"],
    "object": {"$ne": ""},
    **{f"near-{change}": _near_kid(change) for change in
       ("space-after", "space-before", "nul-after", "swapped-case", "prefix", "with-padding")},
}


@pytest.mark.parametrize("case", list(KID_INJECTIONS))
def test_attack_07_kid_injection(
    case: str, ed25519_key: TestKey, make_token: Callable[..., str], verifier: OfflineVerifier,
    transit_in: dict[str, str],
) -> None:
    """Attack #7: kid path traversal, SQL and shell injection, blank, overlong or non-string kid,
    and kids near a real one (case, whitespace, NUL, prefix): all unknown_key."""
    kid = KID_INJECTIONS[case]
    token = make_token(header={"kid": kid(ed25519_key) if callable(kid) else kid})

    started = time.perf_counter()
    decision = present(verifier, token, transit_in)

    assert_code(decision, "unknown_key")
    assert time.perf_counter() - started < 1.0  # nothing slept


def _with_rs(token: str, r: int, s: int) -> str:
    return resign(token, r.to_bytes(32, "big") + s.to_bytes(32, "big"))


PSYCHIC = {
    "all-zero": lambda t, r, s: resign(t, bytes(64)),
    "r=0": lambda t, r, s: _with_rs(t, 0, s),
    "s=0": lambda t, r, s: _with_rs(t, r, 0),
    "r=n": lambda t, r, s: _with_rs(t, P256_N, s),
    "s=n": lambda t, r, s: _with_rs(t, r, P256_N),
    "r=s=n": lambda t, r, s: _with_rs(t, P256_N, P256_N),
    "r=n+1": lambda t, r, s: _with_rs(t, P256_N + 1, s),
    "r=2^256-1": lambda t, r, s: _with_rs(t, 2**256 - 1, s),
    "s=2^256-1": lambda t, r, s: _with_rs(t, r, 2**256 - 1),
    "r=s=1": lambda t, r, s: _with_rs(t, 1, 1),
    "r=n-r": lambda t, r, s: _with_rs(t, P256_N - r, s),
}


@pytest.mark.parametrize("change", sorted(PSYCHIC))
def test_attack_08_psychic_ecdsa_signature(
    change: str, es256_key: TestKey, make_token: Callable[..., str],
    verifier: OfflineVerifier, transit_in: dict[str, str],
) -> None:
    """Attack #8: ECDSA r=0/s=0 (CVE-2022-21449) and other out-of-range or forged r, s."""
    token = make_token(key=es256_key)
    signature = signature_of(token)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")

    assert_code(present(verifier, PSYCHIC[change](token, r, s), transit_in), "bad_signature")
    assert_code(present(verifier, token, transit_in), "accepted")  # the untouched code


def _with_ed25519_s(token: str, s: int) -> str:
    signature = signature_of(token)
    return resign(token, signature[:32] + s.to_bytes(32, "little"))


ED25519_FORGERIES = {
    "S+L": lambda t, s: _with_ed25519_s(t, s + ED25519_L),
    "S+2L": lambda t, s: _with_ed25519_s(t, s + 2 * ED25519_L),
    "S+8L": lambda t, s: _with_ed25519_s(t, s + 8 * ED25519_L),
    "S-high-bit": lambda t, s: _with_ed25519_s(t, s | 1 << 255),
    "S=L": lambda t, s: _with_ed25519_s(t, ED25519_L),
    "identity-R-zero-S": lambda t, s: resign(t, (1).to_bytes(32, "little") + bytes(32)),
    "all-zero": lambda t, s: resign(t, bytes(64)),
    "R-not-canonical": lambda t, s: resign(t, b"\xff" * 31 + b"\x7f" + signature_of(t)[32:]),
}


@pytest.mark.parametrize("change", sorted(ED25519_FORGERIES))
def test_attack_09_ed25519_malleable_signature(
    change: str, make_token: Callable[..., str], verifier: OfflineVerifier, transit_in: dict[str, str]
) -> None:
    """Attack #9: Ed25519 S+kL, S with high bits, small-order and non-canonical R."""
    token = make_token()
    s = int.from_bytes(signature_of(token)[32:], "little")
    assert s < ED25519_L

    assert_code(present(verifier, ED25519_FORGERIES[change](token, s), transit_in), "bad_signature")
    assert_code(present(verifier, token, transit_in), "accepted")


@pytest.mark.parametrize("first", ["original", "malleated"])
def test_attack_10_ecdsa_malleated_second_form_is_a_replay(
    first: str, es256_key: TestKey, key_set: KeySet, make_token: Callable[..., str],
    verifier: OfflineVerifier, transit_in: dict[str, str],
) -> None:
    """Attack #10: (r, n-s) is a second valid token string for the same code; replay goes by jti."""
    original = make_token(key=es256_key)
    header, claims, _ = parts(original)
    signature = signature_of(original)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    malleated = _with_rs(original, r, P256_N - s)
    assert malleated != original
    # Both strings carry a valid signature: the signature is no identity.
    assert key_set[es256_key.kid].verify(signature_of(malleated), f"{header}.{claims}".encode())

    tokens = [original, malleated] if first == "original" else [malleated, original]
    accepted = present(verifier, tokens[0], transit_in)
    second = present(verifier, tokens[1], transit_in)

    assert_code(accepted, "accepted")
    assert second.code == "replayed", second.message
    assert second.ok is False
    assert second.jti == accepted.jti
    records = verifier.pending_records()
    assert [(record["jti"], record["code"]) for record in records] == [
        (accepted.jti, "accepted"),
        (accepted.jti, "replayed"),
    ]


@pytest.mark.parametrize(
    "members",
    [{"crit": ["exp"]}, {"crit": []}, {"crit": ["b64"], "b64": False}, {"crit": "exp"}],
    ids=["crit-exp", "crit-empty", "crit-b64", "crit-string"],
)
def test_attack_11_crit_header(
    members: dict[str, Any], make_token: Callable[..., str], verifier: OfflineVerifier,
    transit_in: dict[str, str],
) -> None:
    """Attack #11: crit listing extensions we do not define (we define none)."""
    assert_code(present(verifier, make_token(header=members), transit_in), "malformed")


def test_attack_12_nested_tokens_cty_and_jwe(
    ed25519_key: TestKey, make_token: Callable[..., str], verifier: OfflineVerifier,
    transit_in: dict[str, str],
) -> None:
    """Attack #12: cty: JWT, a JWS inside a JWS, JWE (5 segments): never decoded recursively."""
    inner = make_token()
    sign = ed25519_key.sign
    jwe = ".".join(
        [
            b64json({"alg": "RSA-OAEP", "enc": "A256GCM", "typ": "rsc+jwt", "kid": ed25519_key.kid}),
            b64url_encode(b"\x01" * 256),
            b64url_encode(b"\x02" * 12),
            b64url_encode(b"\x03" * 40),
            b64url_encode(b"\x04" * 16),
        ]
    )
    cases = {
        "cty-JWT": make_token(header={"cty": "JWT"}),
        "cty-other": make_token(header={"cty": "application/example"}),
        "nested-jws-with-cty": forge(header_of(ed25519_key, cty="JWT"), inner, sign),
        "nested-jws-payload": forge(header_of(ed25519_key), inner, sign),
        "nested-jws-as-json-string": forge(header_of(ed25519_key), json.dumps(inner), sign),
        "jwe-5-segments": jwe,
        "jwe-header-on-a-jws": make_token(header={"enc": "A256GCM"}),
    }
    for name, token in cases.items():
        decision = present(verifier, token, transit_in)
        assert decision.code == "malformed", name
        assert_code(decision, "malformed")


def _token_of_length(
    length: int, ed25519_key: TestKey, make_token: Callable[..., str], sub: str
) -> str | None:
    """A validly signed code of exactly ``length`` characters (an ignored ``pad`` claim)."""
    header_forms = [
        header_of(ed25519_key),
        json.dumps(header_of(ed25519_key), separators=(", ", ":")),  # JSON whitespace, still rule 1
        json.dumps(header_of(ed25519_key), separators=(",", ": ")),
    ]
    for header in header_forms:
        for pad in range(length * 3 // 4 - 400, length * 3 // 4):
            token = make_token(header=header, sub=sub, pad="p" * pad)
            if len(token) == length:
                return token
            if len(token) > length:
                break
    return None


def test_attack_13_huge_tokens_and_json_dos(
    ed25519_key: TestKey, make_token: Callable[..., str], verifier: OfflineVerifier,
    transit_in: dict[str, str],
) -> None:
    """Attack #13: MB tokens refused before decoding; the 4096-byte bound exactly; b64/zip; deep nesting."""
    header, _claims, signature = parts(make_token())

    # 6 MB, all base64url characters, and 6 MB of valid JSON claims: refused, and fast.
    huge = [
        f"{header}.{'A' * 6_000_000}.{signature}",
        make_token(pad="x" * 4_500_000),
        "." * 6_000_000,
        "A" * 6_000_000,
    ]
    for token in huge:
        started = time.perf_counter()
        decision = present(verifier, token, transit_in)
        assert time.perf_counter() - started < 0.25
        assert_code(decision, "malformed")

    # The bound: 4096 characters is still a code, 4097 is not.
    at_limit = _token_of_length(4096, ed25519_key, make_token, sub="limitlimitlimit1")
    over_limit = _token_of_length(4097, ed25519_key, make_token, sub="limitlimitlimit2")
    assert at_limit is not None and over_limit is not None
    assert_code(present(verifier, at_limit, transit_in), "accepted")
    assert_code(present(verifier, over_limit, transit_in), "malformed")

    # b64=false and zip are header members a code never has.
    for members in ({"b64": False}, {"zip": "DEF"}):
        assert_code(present(verifier, make_token(header=members), transit_in), "malformed")

    _assert_deep_nesting_gives_a_decision(ed25519_key, verifier, transit_in)


def _nested_claims(member: str, depth: int, **overrides: Any) -> str:
    base = json.dumps(default_claims(NOW, **overrides), separators=(",", ":"))
    return base[:-1] + f',"{member}":' + "[" * depth + "]" * depth + "}"


def _deepest_within_limit(member: str, ed25519_key: TestKey, **overrides: Any) -> tuple[int, str]:
    header = header_of(ed25519_key)
    depth = 1600
    while True:
        token = forge(header, _nested_claims(member, depth, **overrides), ed25519_key.sign)
        if len(token) <= 4096:
            return depth, token
        depth -= 10


def _assert_deep_nesting_gives_a_decision(
    ed25519_key: TestKey, verifier: OfflineVerifier, transit_in: dict[str, str]
) -> None:
    """Deeply nested JSON within 4096 bytes yields a decision, never an exception.

    Nesting in a required claim is malformed whatever the JSON parser's depth
    limit (either it cannot parse, rule 1, or ``scp`` is not an array of
    strings, rule 4). In an unknown claim it is ignored (RFC 7519) as long as
    the parser can read it; a parser's depth limit makes it malformed (rule 1:
    the segment does not decode). Python 3.11 reads 50 levels and refuses
    ~1400.
    """
    depth, token = _deepest_within_limit("scp", ed25519_key, scp=DROP)
    assert depth > 1000
    assert_code(present(verifier, token, transit_in), "malformed")

    header = header_of(ed25519_key)
    shallow = forge(header, _nested_claims("x", 50, sub="nestednested0001"), ed25519_key.sign)
    assert_code(present(verifier, shallow, transit_in), "accepted")

    depth, deep = _deepest_within_limit("x", ed25519_key, sub="nestednested0002")
    decision = present(verifier, deep, transit_in)
    assert decision.code in {"malformed", "accepted"}, decision.code

    unclosed = forge(header, claims_json()[:-1] + ',"x":' + "[" * 2500 + "}", ed25519_key.sign)
    assert len(unclosed) <= 4096
    assert_code(present(verifier, unclosed, transit_in), "malformed")

    nested_header = json.dumps(header)[:-1] + ',"x":' + "[" * 1000 + "]" * 1000 + "}"
    assert_code(present(verifier, forge(nested_header, claims_json(), ed25519_key.sign), transit_in),
                "malformed")


def test_attack_14_duplicate_json_members(
    ed25519_key: TestKey, verifier: OfflineVerifier, transit_in: dict[str, str]
) -> None:
    """Attack #14: duplicate member names in header or claims (parser differentials)."""
    kid, sign = ed25519_key.kid, ed25519_key.sign
    good_header = json.dumps(header_of(ed25519_key), separators=(",", ":"))
    claims = claims_json()
    cases = {
        "header-alg-none-then-eddsa": (
            f'{{"alg":"none","alg":"EdDSA","typ":"rsc+jwt","kid":"{kid}"}}', claims),
        "header-alg-eddsa-then-none": (
            f'{{"alg":"EdDSA","typ":"rsc+jwt","kid":"{kid}","alg":"none"}}', claims),
        "header-same-kid-twice": (f'{{"alg":"EdDSA","typ":"rsc+jwt","kid":"{kid}","kid":"{kid}"}}', claims),
        "header-escaped-duplicate": (
            f'{{"alg":"EdDSA","typ":"rsc+jwt","kid":"{kid}","\\u0061lg":"none"}}', claims),
        "claims-two-sub": (good_header, claims[:-1] + ',"sub":"someoneelse00001"}'),
        "claims-two-exp": (good_header, claims[:-1] + f',"exp":{NOW + 10**6}}}'),
        "claims-escaped-duplicate-iss": (good_header, claims[:-1] + ',"\\u0069ss":"urn:evil"}'),
        "claims-nested-duplicate": (good_header, claims[:-1] + ',"x":{"a":1,"a":2}}'),
    }
    for name, (header, body) in cases.items():
        decision = present(verifier, forge(header, body, sign), transit_in)
        assert decision.code == "malformed", name
        assert_code(decision, "malformed")


def _std_alphabet_token(make_token: Callable[..., str]) -> str:
    """A fresh code with a "-" or "_" in it (a random jti makes one within a few tries)."""
    for _ in range(200):
        token = make_token()
        if "-" in token or "_" in token:
            return token
    raise AssertionError("no token with - or _ in 200 tries")


BASE64_CHANGES: dict[str, Callable[[str, str, str], str]] = {
    "pad-signature-==": lambda h, c, s: f"{h}.{c}.{s}==",
    "pad-signature-=": lambda h, c, s: f"{h}.{c}.{s}=",
    "pad-header": lambda h, c, s: f"{h}=.{c}.{s}",
    "pad-claims": lambda h, c, s: f"{h}.{c}=.{s}",
    "noncanonical-signature": lambda h, c, s: f"{h}.{c}.{noncanonical(s)}",
    "noncanonical-header": lambda h, c, s: f"{noncanonical(h)}.{c}.{s}",
    "noncanonical-claims": lambda h, c, s: f"{h}.{noncanonical(c)}.{s}",
    "impossible-length": lambda h, c, s: f"{h}.{c + 'A' * ((1 - len(c)) % 4 or 4)}.{s}",
    "plus": lambda h, c, s: f"{h}.{c}.+{s[1:]}",
    "slash": lambda h, c, s: f"{h}.{c}.{s[:-2]}/{s[-1]}",
    "space-inside": lambda h, c, s: f"{h}.{c[:10]} {c[10:]}.{s}",
    "space-after": lambda h, c, s: f"{h}.{c}.{s} ",
    "space-before": lambda h, c, s: f" {h}.{c}.{s}",
    "newline-after": lambda h, c, s: f"{h}.{c}.{s}\n",
    "crlf-after": lambda h, c, s: f"{h}.{c}.{s}\r\n",
    "newline-inside": lambda h, c, s: f"{h}.\n{c}.{s}",
    "tab-inside": lambda h, c, s: f"{h}.{c}\t.{s}",
    "junk-!": lambda h, c, s: f"{h}.{c[:5]}!{c[5:]}.{s}",
    "junk-*": lambda h, c, s: f"{h}.{c}.{s[:40]}*{s[40:]}",
    "non-ascii-letter": lambda h, c, s: f"{h}.{c}.Ａ{s[1:]}",
    "non-ascii-digit": lambda h, c, s: f"{h}.{c}.{s[:-1]}٠",
    "nul": lambda h, c, s: f"{h}.{c}.{s}\0",
    # "+" for "-" and "/" for "_" throughout (on a code that has either): see _std_alphabet_token.
    "standard-alphabet": lambda h, c, s: f"{h}.{c}.{s}".replace("-", "+").replace("_", "/"),
}


@pytest.mark.parametrize("change", list(BASE64_CHANGES))
def test_attack_15_base64url_malleability(
    change: str, ed25519_key: TestKey, make_token: Callable[..., str], verifier: OfflineVerifier,
    transit_in: dict[str, str],
) -> None:
    """Attack #15: padding, non-canonical bits, +/, junk, whitespace, non-ASCII: all malformed."""
    if change == "noncanonical-header":  # the compact header is 68 characters: no unused bits
        token = make_token(header=json.dumps(header_of(ed25519_key), separators=(", ", ":")))
    elif change == "standard-alphabet":
        token = _std_alphabet_token(make_token)
    else:
        token = make_token()
    changed = BASE64_CHANGES[change](*parts(token))
    assert changed != token
    if change.startswith("noncanonical"):
        # A lenient decoder reads the same bytes: exactly the malleability refused here.
        changed_segment = next(a for a, b in zip(changed.split("."), parts(token), strict=True) if a != b)
        original_segment = next(b for a, b in zip(changed.split("."), parts(token), strict=True) if a != b)
        lenient = base64.urlsafe_b64decode(changed_segment + "==")
        assert lenient == base64.urlsafe_b64decode(original_segment + "==")

    assert_code(present(verifier, changed, transit_in), "malformed")
    assert_code(present(verifier, token, transit_in), "accepted")  # the untouched code


def test_attack_16_json_serialization_and_polyglots(
    make_token: Callable[..., str], verifier: OfflineVerifier, transit_in: dict[str, str]
) -> None:
    """Attack #16: JWS JSON serializations, polyglots (CVE-2022-39227), non-text tokens."""
    token = make_token()
    header, claims, signature = parts(token)
    evil_claims = b64json(claims_json(scp=["clinic", "transit", "venue"], sub="evilevilevilevi1"))
    cases: dict[str, object] = {
        "flattened": json.dumps({"payload": claims, "protected": header, "signature": signature}),
        "general": json.dumps({"payload": claims, "signatures": [{"protected": header, "signature": signature}]}),
        "polyglot": (
            f'{{"  {header}.{evil_claims}.":"","protected":"{header}",'
            f'"payload":"{claims}","signature":"{signature}"}}'
        ),
        "compact-in-json-string": json.dumps(token),
        "bytes": token.encode("ascii"),
        "bytearray": bytearray(token.encode("ascii")),
        "none": None,
        "int": 12345,
        "list": [header, claims, signature],
        "dict": {"token": token},
        "four-segments": f"{token}.",
        "leading-dot": f".{token}",
        "empty-claims": f"{header}..{signature}",
        "empty": "",
        "prefixed-uri": f"rsc:{token}",
    }
    for name, value in cases.items():
        decision = present(verifier, value, transit_in)
        assert decision.code == "malformed", name
        assert_code(decision, "malformed")


def _raw_claim(member: str, json_text: str, **overrides: Any) -> str:
    """The default claims with ``member`` written as the raw JSON ``json_text``."""
    claims = default_claims(NOW, **overrides)
    claims.pop(member, None)
    return json.dumps(claims, separators=(",", ":"))[:-1] + f',"{member}":{json_text}}}'


NUMERIC_DATE_CASES: list[Any] = [
    # (id, claims JSON, decision)
    ("exp-string", _raw_claim("exp", f'"{NOW + 60}"'), "malformed"),
    ("iat-string", _raw_claim("iat", f'"{NOW}"'), "malformed"),
    ("exp-true", _raw_claim("exp", "true"), "malformed"),
    ("iat-true", _raw_claim("iat", "true"), "malformed"),
    ("iat-false", _raw_claim("iat", "false"), "malformed"),
    ("exp-null", _raw_claim("exp", "null"), "malformed"),
    ("exp-10^400", _raw_claim("exp", str(10**400)), "malformed"),
    ("iat--10^400", _raw_claim("iat", str(-(10**400))), "malformed"),
    ("exp-float", _raw_claim("exp", f"{NOW + 60}.0"), "malformed"),
    ("exp-exponent", _raw_claim("exp", f"{(NOW + 60) / 10**9}e9"), "malformed"),
    ("exp-exponent-E0", _raw_claim("exp", f"{NOW + 60}E0"), "malformed"),
    ("exp-1e400", _raw_claim("exp", "1e400"), "malformed"),
    ("exp-NaN", _raw_claim("exp", "NaN"), "malformed"),
    ("exp-Infinity", _raw_claim("exp", "Infinity"), "malformed"),
    ("iat--Infinity", _raw_claim("iat", "-Infinity"), "malformed"),
    ("exp-array", _raw_claim("exp", f"[{NOW + 60}]"), "malformed"),
    ("exp-object", _raw_claim("exp", f'{{"$gt":{NOW}}}'), "malformed"),
    # scp a string, where "transit" in "transit" would pass; arrays of non-strings.
    ("scp-string", _raw_claim("scp", '"transit"'), "malformed"),
    ("scp-null-member", _raw_claim("scp", '["transit",null]'), "malformed"),
    ("scp-number-member", _raw_claim("scp", '["transit",1]'), "malformed"),
    ("scp-object", _raw_claim("scp", '{"transit":true}'), "malformed"),
    ("sub-number", _raw_claim("sub", "12345"), "malformed"),
    ("jti-number", _raw_claim("jti", "1"), "malformed"),
    ("iss-array", _raw_claim("iss", '["urn:codeservice:dev"]'), "malformed"),
    # The types come first in rule 4: a string exp and a wrong issuer is malformed.
    ("exp-string-and-wrong-iss", _raw_claim("exp", f'"{NOW + 60}"', iss="urn:someone:else"), "malformed"),
    # The lifetime exp - iat: 1..300 s.
    ("lifetime-0", _raw_claim("exp", str(NOW)), "malformed"),
    ("lifetime-negative", _raw_claim("exp", str(NOW - 1)), "malformed"),
    ("lifetime-301", _raw_claim("exp", str(NOW + 301)), "malformed"),
    ("lifetime-10^9", _raw_claim("exp", str(NOW + 10**9)), "malformed"),
    ("lifetime-300", _raw_claim("exp", str(NOW + 300)), "accepted"),
    ("lifetime-1", _raw_claim("exp", str(NOW + 1)), "accepted"),
    # Once the types are right: iat <= now + leeway, now <= exp + leeway (leeway 10 s).
    ("expired-within-leeway", _raw_claim("exp", str(NOW - 10), iat=NOW - 70), "accepted"),
    ("expired-11s-ago", _raw_claim("exp", str(NOW - 11), iat=NOW - 71), "expired"),
    ("expired-long-ago", _raw_claim("exp", str(NOW - 340), iat=NOW - 400), "expired"),
    ("issued-ahead-within-leeway", _raw_claim("exp", str(NOW + 70), iat=NOW + 10), "accepted"),
    ("issued-11s-ahead", _raw_claim("exp", str(NOW + 71), iat=NOW + 11), "not_yet_valid"),
    ("issued-an-hour-ahead", _raw_claim("exp", str(NOW + 3660), iat=NOW + 3600), "not_yet_valid"),
]


@pytest.mark.parametrize(
    ("claims", "code"), [pytest.param(claims, code, id=name) for name, claims, code in NUMERIC_DATE_CASES]
)
def test_attack_17_numeric_date_type_confusion(
    claims: str, code: str, ed25519_key: TestKey, verifier: OfflineVerifier, transit_in: dict[str, str]
) -> None:
    """Attack #17: exp/iat as strings, booleans, huge integers, floats, NaN/Infinity; the lifetime;
    then the clock rules with their leeway."""
    token = forge(header_of(ed25519_key), claims, ed25519_key.sign)

    assert_code(present(verifier, token, transit_in), code)


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "sub", "jti", "scp", "all"])
def test_attack_18_missing_required_claims(
    missing: str, ed25519_key: TestKey, make_token: Callable[..., str], verifier: OfflineVerifier,
    transit_in: dict[str, str],
) -> None:
    """Attack #18: a never-expiring code (no exp), or any other required claim left out."""
    if missing == "all":
        token = forge(header_of(ed25519_key), "{}", ed25519_key.sign)
    else:
        token = make_token(**{missing: DROP})

    assert_code(present(verifier, token, transit_in), "malformed")


ISSUER_AND_AUDIENCE_CASES: list[Any] = [
    # (id, claim overrides, decision)
    *[
        (f"iss-{name}", {"iss": iss}, "issuer_mismatch")
        for name, iss in [
            ("suffix", "urn:codeservice:dev:evil"),
            ("longer", "urn:codeservice:devx"),
            ("slash", "urn:codeservice:dev/"),
            ("prefix", "urn:codeservice:de"),
            ("namespace-only", "urn:codeservice:"),
            ("prefixed", "evil:urn:codeservice:dev"),
            ("one-more-char-before", "xurn:codeservice:dev"),
            ("upper-scheme", "URN:codeservice:dev"),
            ("upper-namespace", "urn:CODESERVICE:dev"),
            ("trailing-space", "urn:codeservice:dev "),
            ("leading-space", " urn:codeservice:dev"),
            ("trailing-nul", "urn:codeservice:dev\0"),
            ("cyrillic-e", "urn:codeservice:d\u0435v"),
            ("as-url", "https://urn:codeservice:dev"),
        ]
    ],
    # Our codes carry no aud: scp plays its part, checked against the scanner's scene.
    ("scp-other-scenes", {"scp": ["clinic", "venue"]}, "scene_not_allowed"),
    ("scp-empty", {"scp": []}, "scene_not_allowed"),
    ("scp-case-variant", {"scp": ["Transit"]}, "scene_not_allowed"),
    ("aud-ignored", {"aud": "https://other.example"}, "accepted"),
]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [pytest.param(overrides, code, id=name) for name, overrides, code in ISSUER_AND_AUDIENCE_CASES],
)
def test_attack_19_issuer_partial_match_and_audience(
    overrides: dict[str, Any], code: str, make_token: Callable[..., str], verifier: OfflineVerifier,
    transit_in: dict[str, str],
) -> None:
    """Attack #19: iss a prefix, suffix, case or homoglyph variant of the expected issuer; a code
    for another relying party (scene)."""
    assert_code(present(verifier, make_token(**overrides), transit_in), code)


@pytest.mark.parametrize(
    "typ",
    ["at+jwt", "JWT", "jwt", "JOSE", "id_token", "application/at+jwt", "RSC+JWT", "application/rsc+jwt",
     "rsc+jwt ", "rsc", "", None, DROP, 1, ["rsc+jwt"]],
    ids=member_id,
)
def test_attack_20_typ_confusion(
    typ: Any, make_token: Callable[..., str], verifier: OfflineVerifier, transit_in: dict[str, str]
) -> None:
    """Attack #20: another JWT type (access token, ID token) presented as a resident code."""
    token = make_token(header={"typ": typ}, aud="client", nonce="n-0S6_WzA2Mj")
    assert_code(present(verifier, token, transit_in), "wrong_type")

    # typ is checked before alg: a wrong type with alg none is still wrong_type.
    assert_code(present(verifier, make_token(header={"typ": typ, "alg": "none"}), transit_in), "wrong_type")


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "hs256"])
@pytest.mark.parametrize("secret", [b"", b"secret", b"\0" * 32], ids=["blank", "weak", "zeros"])
def test_attack_21_hmac_in_any_form(
    alg: str, secret: bytes, ed25519_key: TestKey, es256_key: TestKey, key_set: KeySet,
    verifier: OfflineVerifier, transit_in: dict[str, str],
) -> None:
    """Attack #21 (n/a: HS* is never allowed): HMAC with blank or weak secrets is alg_not_allowed."""
    for key in (ed25519_key, es256_key):
        token = forge(header_of(key, alg=alg), claims_json(), hs256(secret))
        assert_code(present(verifier, token, transit_in), "alg_not_allowed")

    with pytest.raises(ConfigurationError):
        OfflineVerifier(key_set, issuer=ISSUER, algorithms=["EdDSA", alg])
    with pytest.raises(KeySetError):
        KeySet.from_jwks({"keys": [{"kty": "oct", "kid": "hmac", "alg": alg, "k": b64url_encode(secret or b"k")}]})


def _jwks_cases(ed: dict[str, str], es: dict[str, str]) -> dict[str, Any]:
    rsa = {"kty": "RSA", "kid": "rsa", "n": b64url_encode(b"\xc1" * 256), "e": "AQAB"}
    return {
        "private-d-okp": {"keys": [{**ed, "d": b64url_encode(bytes(32))}]},
        "private-d-ec": {"keys": [{**es, "d": b64url_encode(bytes(32))}]},
        "private-rsa-members": {"keys": [{**rsa, "p": "AQAB", "q": "AQAB"}]},
        "duplicate-kid": {"keys": [ed, ed]},
        "duplicate-kid-other-key": {"keys": [ed, {**es, "kid": ed["kid"]}]},
        "kty-rsa": {"keys": [rsa]},
        "kty-oct": {"keys": [{"kty": "oct", "kid": "oct", "k": "c2VjcmV0"}]},
        "kty-missing": {"keys": [{k: v for k, v in ed.items() if k != "kty"}]},
        "kty-unknown": {"keys": [{**ed, "kty": "XYZ"}]},
        "crv-x25519": {"keys": [{**ed, "crv": "X25519"}]},
        "crv-ed448": {"keys": [{**ed, "crv": "Ed448"}]},
        "crv-p384": {"keys": [{**es, "crv": "P-384"}]},
        "crv-secp256k1": {"keys": [{**es, "crv": "secp256k1"}]},
        "use-enc": {"keys": [{**ed, "use": "enc"}]},
        "use-enc-ec": {"keys": [{**es, "use": "enc"}]},
        "alg-es256-on-okp": {"keys": [{**ed, "alg": "ES256"}]},
        "alg-eddsa-on-ec": {"keys": [{**es, "alg": "EdDSA"}]},
        "alg-hs256": {"keys": [{**ed, "alg": "HS256"}]},
        "alg-none": {"keys": [{**es, "alg": "none"}]},
        "kid-missing": {"keys": [{k: v for k, v in ed.items() if k != "kid"}]},
        "kid-blank": {"keys": [{**ed, "kid": ""}]},
        "x-wrong-length": {"keys": [{**ed, "x": b64url_encode(bytes(31))}]},
        "ec-point-off-curve": {"keys": [{**es, "y": b64url_encode(bytes(31) + b"\1")}]},
        "keys-not-a-list": {"keys": {"0": ed}},
        "no-keys": {},
    }


def test_attack_22_jwks_poisoning(
    ed25519_key: TestKey, es256_key: TestKey, jwks: dict[str, Any], no_network: None, tmp_path: Path
) -> None:
    """Attack #22: a JWKS with private members, duplicate kids, unknown kty/crv, use enc, alg mismatch;
    key set URLs other than https (or http on loopback) refused without any network access."""
    assert sorted(KeySet.from_jwks(jwks)) == sorted([ed25519_key.kid, es256_key.kid])  # the good set

    for name, bad in _jwks_cases(ed25519_key.jwk, es256_key.jwk).items():
        with pytest.raises(KeySetError):
            KeySet.from_jwks(bad)
            pytest.fail(f"{name}: accepted")
        # The same set read from a file.
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(KeySetError):
            KeySet.from_jwks(str(path))

    duplicate_members = tmp_path / "duplicate-members.json"
    duplicate_members.write_text('{"keys":[],"keys":[' + json.dumps(ed25519_key.jwk) + "]}", encoding="utf-8")
    for source in (
        "http://example.com/jwks",
        "http://example.com:443/jwks",
        "http://localhost.attacker.example/jwks",
        "http://127.0.0.1.nip.io/jwks",
        "file:///etc/passwd",
        "file://" + str(tmp_path / "private-d-okp.json"),
        "ftp://example.com/jwks.json",
        "gopher://127.0.0.1/",
        str(duplicate_members),
    ):
        with pytest.raises(KeySetError):
            KeySet.from_jwks(source)
            pytest.fail(f"{source}: accepted")


def _replace_in_claims(old: bytes, new: bytes) -> bytes:
    claims = claims_json().encode()
    assert old in claims
    return claims.replace(old, new, 1)


def _replace_in_header(key: TestKey, old: bytes, new: bytes) -> bytes:
    header = json.dumps(header_of(key), separators=(",", ":")).encode()
    assert old in header
    return header.replace(old, new, 1)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_attack_23_invalid_utf8_and_non_objects(
    store: str, ed25519_key: TestKey, key_set: KeySet, verifier: OfflineVerifier,
    transit_in: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    """Attack #23: claims or header not UTF-8 text (bad bytes, lone surrogates, BOM, UTF-16),
    or not a JSON object."""
    if store == "sqlite":  # a store that writes UTF-8 text must not crash either
        verifier = OfflineVerifier(key_set, issuer=ISSUER, store=tmp_path / "scanner.db",
                                   venue_id="museum-1", device_id="gate-1")
        request.addfinalizer(verifier.close)
    header, sign = header_of(ed25519_key), ed25519_key.sign
    claims = claims_json()
    sub = b'"q1w2e3r4t5y6u7i8"'
    cases: dict[str, tuple[Any, Any]] = {
        "claims-invalid-byte": (header, _replace_in_claims(sub, b'"q1w2\xff3r4t5y6u7i8"')),
        "claims-truncated-sequence": (header, _replace_in_claims(sub, b'"q1w2\xc3(3r4t5y6u7i8"')),
        "claims-overlong-slash": (header, _replace_in_claims(sub, b'"q1w2\xc0\xaf3r4t5y6u7i8"')),
        "claims-encoded-surrogate": (header, _replace_in_claims(sub, b'"q1w2\xed\xa0\x803r4t5y6u7i8"')),
        "claims-escaped-lone-surrogate-sub": (header, _replace_in_claims(sub, b'"q1w2\\ud8003r4t5y6u7i8"')),
        "claims-escaped-lone-low-surrogate": (header, claims[:-1] + ',"x":"\\udfff"}'),
        "claims-escaped-reversed-pair": (header, claims[:-1] + ',"x":"\\ude00\\ud83d"}'),
        "claims-latin1": (header, _replace_in_claims(sub, '"q1w2é3r4t5y6u7i8"'.encode("latin-1"))),
        "claims-utf8-bom": (header, b"\xef\xbb\xbf" + claims.encode()),
        "claims-utf16": (header, claims.encode("utf-16")),
        "header-invalid-byte": (_replace_in_header(ed25519_key, b'"rsc+jwt"', b'"rsc\xff+jwt"'), claims),
        "header-escaped-lone-surrogate": (
            _replace_in_header(ed25519_key, b'"rsc+jwt"', b'"rsc+jwt\\ud800"'), claims),
        "claims-array": (header, "[]"),
        "claims-string": (header, '"claims"'),
        "claims-number": (header, "1"),
        "claims-null": (header, "null"),
        "claims-true": (header, "true"),
        "claims-empty": (header, ""),
        "claims-two-objects": (header, claims + claims),
        "header-array": ("[]", claims),
        "header-array-of-members": (json.dumps([["alg", "EdDSA"], ["typ", "rsc+jwt"], ["kid", ed25519_key.kid]]),
                                    claims),
        "header-string": ('"EdDSA"', claims),
        "header-null": ("null", claims),
        "header-empty-bytes": (b"", claims),
    }
    for name, (head, body) in cases.items():
        decision = present(verifier, forge(head, body, sign), transit_in)
        assert decision.code == "malformed", name
        assert_code(decision, "malformed")

    # Unicode that is text is fine: an escaped surrogate pair and raw UTF-8 in unknown claims.
    fine = claims[:-1] + ',"x":"\\ud83d\\ude00","y":"人民广场"}'
    assert_code(present(verifier, forge(header, fine, sign), transit_in), "accepted")


@pytest.mark.parametrize(
    "alg",
    ["Ed25519", "ed25519", "ED25519", "EDDSA", "eddsa", "Eddsa", "EdDSA ", " EdDSA", "Ed448",
     "ES256K", "es256", "ES384", "ES512", "PS256", "RS256", "ESP256"],
    ids=repr,
)
def test_attack_24_unknown_alg_spellings(
    alg: str, make_token: Callable[..., str], verifier: OfflineVerifier, transit_in: dict[str, str]
) -> None:
    """Attack #24: Ed25519 (fully-specified algorithms draft) and other spellings are not EdDSA."""
    assert_code(present(verifier, make_token(header={"alg": alg}), transit_in), "alg_not_allowed")


# -- attacks.md and this module agree -----------------------------------------


def test_every_attack_in_attacks_md_has_a_test() -> None:
    """Docs kept honest: each numbered row of attacks.md has a test_attack_NN_ here, and no test
    names an attack the document does not list."""
    rows = re.findall(r"^\|\s*(\d+)\s*\|", ATTACKS_MD.read_text(encoding="utf-8"), flags=re.MULTILINE)
    documented = [int(number) for number in rows]
    assert documented == list(range(1, 25)), documented

    tests: dict[int, list[Any]] = {}
    for name, function in globals().items():
        match = re.match(r"test_attack_(\d{2})_\w+\Z", name)
        if match and callable(function):
            tests.setdefault(int(match.group(1)), []).append(function)
    assert sorted(tests) == documented, sorted(set(documented) ^ set(tests))
    for number, functions in tests.items():
        assert len(functions) == 1, [function.__name__ for function in functions]
        assert (functions[0].__doc__ or "").startswith(f"Attack #{number}"), functions[0].__name__
