"""codeservice.issuance: the code of contract section 1, checked with pyjwt."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeservice.errors import KeyStoreError
from codeservice.issuance import CATEGORIES, issue_code, new_code_id
from codeservice.keystore import KeyStore, Signer
from verifiers.jose import b64url_decode, public_key_from_jwk

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
SCOPES = ["clinic", "transit", "venue"]
B64URL = re.compile(r"[A-Za-z0-9_-]+\Z")


@pytest.fixture(scope="module", params=["EdDSA", "ES256"])
def signer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Signer:
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    store.init(alg=request.param, now=NOW)
    return store.signer()


@pytest.fixture(scope="module")
def sub() -> str:
    return new_code_id()


def decode(token: str, signer: Signer) -> dict:
    """Verify with pyjwt against the signer's published key; the clock is NOW, not today."""
    key = public_key_from_jwk(signer.public_jwk())
    return jwt.decode(
        token,
        key=key,
        algorithms=[signer.alg],
        issuer="urn:codeservice:dev",
        options={"verify_exp": False, "verify_iat": False, "require": ["iss", "sub", "iat", "exp", "jti"]},
    )


def segments(token: str) -> tuple[bytes, bytes, bytes]:
    header, claims, signature = token.split(".")
    return b64url_decode(header), b64url_decode(claims), b64url_decode(signature)


def test_code_decodes_with_pyjwt_with_exactly_the_contract_members(signer: Signer, sub: str) -> None:
    token = issue_code(signer, sub=sub, scopes=SCOPES, category="senior", now=NOW)

    claims = decode(token, signer)
    assert jwt.get_unverified_header(token) == {"alg": signer.alg, "typ": "rsc+jwt", "kid": signer.kid}
    assert claims == {
        "iss": "urn:codeservice:dev",
        "sub": sub,
        "iat": NOW,
        "exp": NOW + 60,
        "jti": claims["jti"],
        "scp": SCOPES,
        "cat": "senior",
    }
    assert len(claims["jti"]) == 11 and B64URL.match(claims["jti"])
    assert len(claims["sub"]) == 16


def test_header_and_claims_are_compact_json_in_contract_order(signer: Signer, sub: str) -> None:
    token = issue_code(signer, sub=sub, scopes=SCOPES, category="student", now=NOW)

    header, claims, signature = segments(token)
    assert header == f'{{"alg":"{signer.alg}","typ":"rsc+jwt","kid":"{signer.kid}"}}'.encode()
    jti = json.loads(claims)["jti"]
    assert claims == (
        f'{{"iss":"urn:codeservice:dev","sub":"{sub}","iat":{NOW},"exp":{NOW + 60},'
        f'"jti":"{jti}","scp":["clinic","transit","venue"],"cat":"student"}}'
    ).encode()
    assert b" " not in header and b" " not in claims
    assert len(signature) == 64  # Ed25519, or ES256 as r||s (not DER)
    assert "=" not in token and token.count(".") == 2


def test_no_cat_claim_without_a_category(signer: Signer, sub: str) -> None:
    token = issue_code(signer, sub=sub, scopes=["transit"], category=None, now=NOW)
    claims = decode(token, signer)
    assert list(claims) == ["iss", "sub", "iat", "exp", "jti", "scp"]
    assert claims["scp"] == ["transit"]


def test_ttl_and_issuer(signer: Signer, sub: str) -> None:
    token = issue_code(
        signer, sub=sub, scopes=SCOPES, category=None, now=NOW, ttl=300, issuer="https://city.example"
    )
    claims = jwt.decode(
        token,
        key=public_key_from_jwk(signer.public_jwk()),
        algorithms=[signer.alg],
        issuer="https://city.example",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert (claims["iat"], claims["exp"]) == (NOW, NOW + 300)


def test_code_is_valid_now_for_a_live_clock(signer: Signer, sub: str) -> None:
    """With today's time, pyjwt's own exp/iat checks pass too."""
    import time

    now = int(time.time())
    token = issue_code(signer, sub=sub, scopes=SCOPES, category=None, now=now)
    jwt.decode(
        token,
        key=public_key_from_jwk(signer.public_jwk()),
        algorithms=[signer.alg],
        issuer="urn:codeservice:dev",
        options={"require": ["exp", "iat"]},
    )


def test_signature_is_checked(signer: Signer, sub: str) -> None:
    token = issue_code(signer, sub=sub, scopes=SCOPES, category=None, now=NOW)
    header, _claims, signature = token.split(".")
    forged = issue_code(signer, sub=new_code_id(), scopes=SCOPES, category=None, now=NOW)
    with pytest.raises(jwt.InvalidSignatureError):
        decode(f"{header}.{forged.split('.')[1]}.{signature}", signer)


def test_every_code_has_a_fresh_jti(signer: Signer, sub: str) -> None:
    jtis = {
        jwt.decode(
            issue_code(signer, sub=sub, scopes=SCOPES, category=None, now=NOW),
            options={"verify_signature": False},
        )["jti"]
        for _ in range(500)
    }
    assert len(jtis) == 500


def test_new_code_id_is_96_random_bits() -> None:
    ids = {new_code_id() for _ in range(1000)}
    assert len(ids) == 1000
    for code_id in ids:
        assert len(code_id) == 16 and B64URL.match(code_id)
        assert len(b64url_decode(code_id)) == 12


@pytest.mark.parametrize("ttl", [15, 300])
def test_ttl_bounds_accepted(signer: Signer, sub: str, ttl: int) -> None:
    claims = decode(issue_code(signer, sub=sub, scopes=SCOPES, category=None, now=NOW, ttl=ttl), signer)
    assert claims["exp"] - claims["iat"] == ttl


@pytest.mark.parametrize("ttl", [14, 301, 0, -60, 60.0, True])
def test_ttl_out_of_range_is_refused(signer: Signer, sub: str, ttl) -> None:
    with pytest.raises(ValueError, match="ttl must be an integer from 15 to 300"):
        issue_code(signer, sub=sub, scopes=SCOPES, category=None, now=NOW, ttl=ttl)


@pytest.mark.parametrize("category", CATEGORIES)
def test_each_category(signer: Signer, sub: str, category: str) -> None:
    claims = decode(issue_code(signer, sub=sub, scopes=SCOPES, category=category, now=NOW), signer)
    assert claims["cat"] == category


@pytest.mark.parametrize("category", ["vip", "", "Senior", 1])
def test_unknown_category_is_refused(signer: Signer, sub: str, category) -> None:
    with pytest.raises(ValueError, match="category must be one of senior, student, disabled, child"):
        issue_code(signer, sub=sub, scopes=SCOPES, category=category, now=NOW)


@pytest.mark.parametrize("now", [1767225600.5, "1767225600", None, True])
def test_now_must_be_an_int(signer: Signer, sub: str, now) -> None:
    # A float would give "iat":1767225600.5, which verifiers reject as malformed.
    with pytest.raises(TypeError, match="now must be an int"):
        issue_code(signer, sub=sub, scopes=SCOPES, category=None, now=now)


@pytest.mark.parametrize("bad_sub", ["", "42", "resident-00000042x", "a" * 15, "a+aaaaaaaaaaaaaa", None])
def test_sub_must_be_a_code_id(signer: Signer, bad_sub) -> None:
    with pytest.raises(ValueError, match="16 base64url characters"):
        issue_code(signer, sub=bad_sub, scopes=SCOPES, category=None, now=NOW)


def test_scopes_must_be_a_list_of_names(signer: Signer, sub: str) -> None:
    with pytest.raises(TypeError, match="not a single string"):
        issue_code(signer, sub=sub, scopes="transit", category=None, now=NOW)
    for bad in ([], [""], ["transit", 3]):
        with pytest.raises(ValueError, match="at least one non-empty scene name"):
            issue_code(signer, sub=sub, scopes=bad, category=None, now=NOW)


def test_scopes_as_a_tuple(signer: Signer, sub: str) -> None:
    claims = decode(issue_code(signer, sub=sub, scopes=("venue",), category=None, now=NOW), signer)
    assert claims["scp"] == ["venue"]


def test_issuer_must_not_be_empty(signer: Signer, sub: str) -> None:
    with pytest.raises(ValueError, match="issuer"):
        issue_code(signer, sub=sub, scopes=SCOPES, category=None, now=NOW, issuer="")


class DerSigner:
    """A Signer that wrongly returns a DER ECDSA signature (70-odd bytes)."""

    kid = "AAAAAAAAAAA"
    alg = "ES256"

    def sign(self, signing_input: bytes) -> bytes:
        return b"\x30\x45" + b"\x01" * 69

    def public_jwk(self) -> dict[str, str]:
        return {}


def test_a_signer_returning_a_non_jws_signature_is_refused(sub: str) -> None:
    with pytest.raises(KeyStoreError, match="71-byte signature"):
        issue_code(DerSigner(), sub=sub, scopes=SCOPES, category=None, now=NOW)


def test_issuance_does_not_import_flask() -> None:
    import codeservice.issuance

    source = Path(codeservice.issuance.__file__).read_text()
    assert not re.search(r"^\s*(import|from)\s+flask", source, re.MULTILINE)


@settings(max_examples=50, deadline=None)
@given(
    scopes=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=5),
    category=st.sampled_from([None, *CATEGORIES]),
    now=st.integers(min_value=0, max_value=2**40),
)
def test_any_scene_names_round_trip(signer: Signer, sub: str, scopes, category, now) -> None:
    token = issue_code(signer, sub=sub, scopes=scopes, category=category, now=now)
    claims = decode(token, signer)
    assert claims["scp"] == scopes
    assert claims.get("cat") == category
    assert (claims["iat"], claims["exp"]) == (now, now + 60)
