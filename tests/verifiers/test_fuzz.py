"""Contract section 2's promise, fuzzed: any token or context, however malformed,
yields a decision with ``ok: false`` and a known code, never an exception; and
no single-character change to a valid code is ever accepted.

Keys and codes are built once per module (hypothesis refuses function-scoped
fixtures); each mutated code meets a fresh verifier, so a replay cannot hide
an acceptance.
"""

from __future__ import annotations

import io
import json
import string
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import ALL_SCENES, ISSUER, NOW, b64json, default_claims, make_test_key
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from verifiers import KeySet, OfflineVerifier, SceneRegistry
from verifiers.__main__ import main
from verifiers.jose import b64url_encode

KNOWN_CODES = frozenset(SceneRegistry.from_entry_points().rejection_codes()) | {"accepted"}
# A changed code never gets past its signature: these are all it can be refused with.
BEFORE_THE_SIGNATURE = {"malformed", "wrong_type", "alg_not_allowed", "unknown_key", "bad_signature"}
DECISION_KEYS = {"ok", "code", "scene", "form", "sub", "jti", "exp", "check_id", "detail", "message"}

B64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
# Lookalikes a lax parser might fold to ASCII: fullwidth A, Arabic-Indic three,
# long s, Kelvin sign; and spaces a strip() would eat.
UNICODE = "é\u00a0\u200b\ufeff\x00Ａ٣ſK\u2028😀"
MUTATION_CHARS = B64URL + ".= " + UNICODE

ED25519 = make_test_key("EdDSA")
ES256 = make_test_key("ES256")
KEYS = KeySet.from_jwks({"keys": [ED25519.jwk, ES256.jwk]})
REGISTRY = SceneRegistry.from_entry_points()
VALID_CONTEXTS: dict[str, dict[str, Any]] = {
    "transit": {"station": "人民广场", "direction": "in", "line": "1"},
    "clinic": {"department": "cardiology"},
    "venue": {"venue_id": "museum-1"},
}
FAST = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def new_verifier() -> OfflineVerifier:
    return OfflineVerifier(KEYS, issuer=ISSUER, venue_id="museum-1", device_id="gate-1", scenes=REGISTRY)


def sign(key: Any, header: dict[str, Any] | str, claims: dict[str, Any] | str) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


def valid_token(key: Any, now: int = NOW) -> str:
    return sign(key, {"alg": key.alg, "typ": "rsc+jwt", "kid": key.kid}, default_claims(now, exp=now + 300))


BASE_TOKENS = {"EdDSA": valid_token(ED25519), "ES256": valid_token(ES256)}


def assert_refused(decision: Any, allowed: set[str] | frozenset[str] = KNOWN_CODES) -> None:
    assert decision.ok is False
    assert decision.code != "accepted"
    assert decision.code in allowed, decision.code
    as_dict = decision.to_dict()
    assert set(as_dict) == DECISION_KEYS
    json.dumps(as_dict)


# -- strategies ----------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.sampled_from(["in", "out", ""])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
context_keys = st.sampled_from(
    ["station", "direction", "line", "department", "appointments", "venue_id", "capacity", "reservations"]
) | st.text(max_size=8)
contexts = st.one_of(
    st.none(),
    json_values,
    st.dictionaries(context_keys, json_values, max_size=5),
    st.sampled_from(list(VALID_CONTEXTS.values())),
    st.sampled_from(list(VALID_CONTEXTS.values())).flatmap(
        lambda base: st.dictionaries(context_keys, json_values, max_size=2).map(lambda extra: {**base, **extra})
    ),
)

headers = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "alg": st.sampled_from(["EdDSA", "ES256", "none", "HS256"]) | json_values,
            "typ": st.sampled_from(["rsc+jwt", "JWT"]) | json_values,
            "kid": st.sampled_from([ED25519.kid, ES256.kid, "AAAAAAAAAAA"]) | json_values,
            "jku": st.just("https://attacker.example/"),
        },
    ),
    json_values,
)
claim_sets = st.one_of(st.dictionaries(st.text(max_size=5), json_values, max_size=8), json_values)
segments = st.text(alphabet=B64URL, max_size=120)

tokens = st.one_of(
    st.text(),
    st.text(max_size=5000),
    st.text(alphabet=B64URL + ".=", max_size=300),
    st.lists(segments, min_size=0, max_size=5).map(".".join),
    st.binary(max_size=300).map(lambda raw: raw.decode("latin-1")),
    st.binary(max_size=300).map(lambda raw: raw.decode("utf-8", errors="surrogateescape")),
    st.builds(lambda char, count: char * count, st.characters(), st.integers(0, 200_000)),
    # A valid code with something after it (count 0 would be the valid code itself).
    st.builds(lambda count: BASE_TOKENS["EdDSA"] + "A" * count, st.integers(1, 5000)),
    st.tuples(headers, claim_sets, st.binary(max_size=80)).map(
        lambda parts: f"{b64json(parts[0])}.{b64json(parts[1])}.{b64url_encode(parts[2])}"
    ),
)


@st.composite
def mutations(draw: st.DrawFn, token: str) -> str:
    """``token`` with one character substituted, inserted or deleted, anywhere."""
    operation = draw(st.sampled_from(["substitute", "insert", "delete"]))
    if operation == "insert":
        position = draw(st.integers(0, len(token)))
        return token[:position] + draw(st.sampled_from(MUTATION_CHARS)) + token[position:]
    position = draw(st.integers(0, len(token) - 1))
    if operation == "delete":
        return token[:position] + token[position + 1 :]
    return token[:position] + draw(st.sampled_from(MUTATION_CHARS)) + token[position + 1 :]


# -- (a) arbitrary input -------------------------------------------------------


@pytest.mark.parametrize("scene", ALL_SCENES)
@settings(FAST, max_examples=500)
@given(token=tokens, context=contexts, now=st.integers(0, 2 * NOW) | st.floats(0, 2 * NOW) | st.just(NOW))
def test_arbitrary_input_is_refused_never_raised(scene, token, context, now):
    assert_refused(new_verifier().verify(token, scene, context, now=now))


@settings(FAST, max_examples=300)
@given(
    token=tokens | st.none() | st.binary() | st.integers() | json_values,
    scene=st.sampled_from(ALL_SCENES) | json_values,
    context=contexts,
)
def test_arbitrary_objects_are_refused_never_raised(token, scene, context):
    assert_refused(new_verifier().verify(token, scene, context, now=NOW))


@settings(FAST, max_examples=500)
@given(
    overrides=st.dictionaries(
        st.sampled_from(["iss", "sub", "iat", "exp", "jti", "scp", "cat"]) | st.text(max_size=5),
        json_values | st.sampled_from([NOW, NOW + 60, ["transit"], "senior"]),
        max_size=3,
    ),
    scene=st.sampled_from(ALL_SCENES),
    context=contexts,
)
def test_validly_signed_arbitrary_claims_never_raise(overrides, scene, context):
    # Signed by a known key: the claim rules (4-8) meet arbitrary JSON. A code
    # whose overrides happen to be valid may be accepted; nothing may raise.
    claims = {**default_claims(NOW), **overrides}
    token = sign(ED25519, {"alg": "EdDSA", "typ": "rsc+jwt", "kid": ED25519.kid}, claims)
    decision = new_verifier().verify(token, scene, context, now=NOW)
    assert decision.code in KNOWN_CODES and decision.ok == (decision.code == "accepted")
    assert set(decision.to_dict()) == DECISION_KEYS
    json.dumps(decision.to_dict())


# -- (b) single-character mutations of a valid code ----------------------------


@pytest.mark.parametrize("alg", sorted(BASE_TOKENS))
@pytest.mark.parametrize("scene", ALL_SCENES)
def test_the_unmutated_codes_are_accepted(alg, scene):
    decision = new_verifier().verify(BASE_TOKENS[alg], scene, VALID_CONTEXTS[scene], now=NOW)
    assert (decision.ok, decision.code) == (True, "accepted")


@pytest.mark.parametrize("alg", sorted(BASE_TOKENS))
@settings(FAST, max_examples=1000)
@given(data=st.data(), scene=st.sampled_from(ALL_SCENES))
def test_no_single_character_mutation_is_accepted(alg, data, scene):
    token = BASE_TOKENS[alg]
    mutated = data.draw(mutations(token), label="mutated")
    assume(mutated != token)
    decision = new_verifier().verify(mutated, scene, VALID_CONTEXTS[scene], now=NOW)
    assert_refused(decision, BEFORE_THE_SIGNATURE)
    assert (decision.sub, decision.jti, decision.exp) == (None, None, None)


# -- (c) the same through the command line, in-process ------------------------


@pytest.fixture(scope="module")
def jwks_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "jwks.json"
    path.write_text(json.dumps(KEYS.to_jwks()))
    return path


@pytest.fixture(scope="module")
def live_tokens() -> dict[str, str]:
    """Valid for 300 s from now: the command reads the real clock."""
    return {"EdDSA": valid_token(ED25519, int(time.time())), "ES256": valid_token(ES256, int(time.time()))}


def run_main(argv: list[str], stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    """``main(argv)`` with its own standard streams (capsys is function-scoped)."""
    saved = sys.stdin, sys.stdout, sys.stderr
    out, err = io.BytesIO(), io.BytesIO()
    streams = [io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")]
    streams += [io.TextIOWrapper(buffer, encoding="utf-8") for buffer in (out, err)]
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        status = main(argv)
        sys.stdout.flush()
        sys.stderr.flush()
        return status, out.getvalue(), err.getvalue()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def check_argv(jwks_path: Path, scene: str) -> list[str]:
    return ["check", "--jwks", str(jwks_path), "--scene", scene, "--context", json.dumps(VALID_CONTEXTS[scene])]


@pytest.mark.parametrize("alg", sorted(BASE_TOKENS))
def test_the_unmutated_codes_pass_the_command(jwks_path, live_tokens, alg):
    status, out, err = run_main([*check_argv(jwks_path, "transit"), "--", live_tokens[alg]])
    assert (status, err) == (0, b"")
    assert json.loads(out)["code"] == "accepted"


@settings(FAST, max_examples=200)
@given(data=st.data(), alg=st.sampled_from(sorted(BASE_TOKENS)), scene=st.sampled_from(ALL_SCENES), stdin=st.booleans())
def test_no_single_character_mutation_passes_the_command(jwks_path, live_tokens, data, alg, scene, stdin):
    token = live_tokens[alg]
    mutated = data.draw(mutations(token), label="mutated")
    assume(mutated != token)
    if stdin:
        status, out, err = run_main([*check_argv(jwks_path, scene), "-"], stdin=mutated.encode("utf-8") + b"\n")
    else:
        status, out, err = run_main([*check_argv(jwks_path, scene), "--", mutated])
    assert (status, err) == (1, b"")
    decision = json.loads(out.decode("utf-8"))
    assert set(decision) == DECISION_KEYS
    assert decision["ok"] is False and decision["code"] in BEFORE_THE_SIGNATURE
