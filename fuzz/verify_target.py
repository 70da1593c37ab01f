"""Coverage-guided fuzzing of ``OfflineVerifier.verify``, run by hand with atheris.

The property (contract section 2): for any token, scene and context,
``verify`` returns a decision and raises nothing; the decision's code is
``accepted`` or one of the rejection codes the loaded modules define; ``ok``
is true exactly for ``accepted``; the decision is plain JSON.

The fuzzer's bytes choose one of five shapes, so that most inputs get past
the signature check instead of dying as garbage at rule 1:

0. any text as the token;
1. any bytes as the claims segment, signed with a key of the key set;
2. any bytes as the header segment, with good claims, signed;
3. good claims with one to three members dropped or replaced by any JSON;
4. a good code (a fresh ``jti`` each time) with any JSON as the context.

Usage (see fuzz/README.md)::

    pip install atheris
    python fuzz/verify_target.py CORPUS_DIR -max_total_time=600
"""

from __future__ import annotations

import json
import sys

import atheris
from common import ISSUER, NOW, any_json, key_set, sign

from verifiers import OfflineVerifier, SceneRegistry

SCENES = ("clinic", "transit", "venue", "no-such-scene")
CLAIMS = ("iss", "sub", "iat", "exp", "jti", "scp", "cat", "nbf")


verifier = OfflineVerifier(key_set(), issuer=ISSUER, venue_id="v1", device_id="d1")
CODES = {*SceneRegistry.from_entry_points().rejection_codes(), "accepted"}
codes_made = 0


def good_claims() -> dict[str, object]:
    global codes_made
    codes_made += 1
    jti = codes_made.to_bytes(8, "big").hex()[:11]
    return {"iss": ISSUER, "sub": "AAAAAAAAAAAAAAAA", "iat": NOW, "exp": NOW + 60, "jti": jti, "scp": list(SCENES[:3])}


def header(alg: str) -> bytes:
    kid = "edkid000000" if alg == "EdDSA" else "eckid000000"
    return json.dumps({"alg": alg, "typ": "rsc+jwt", "kid": kid}, separators=(",", ":")).encode()


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    shape = fdp.ConsumeIntInRange(0, 4)
    scene = SCENES[fdp.ConsumeIntInRange(0, len(SCENES) - 1)]
    alg = "EdDSA" if fdp.ConsumeBool() else "ES256"
    direction = "in" if fdp.ConsumeBool() else "out"
    context: object = {"clinic": {"department": "d"}, "transit": {"station": "s", "direction": direction}}.get(scene)
    if shape == 0:
        token = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 600))
    elif shape == 1:
        token = sign(header(alg), fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 400)), alg)
    elif shape == 2:
        token = sign(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200)), json.dumps(good_claims()).encode(), alg)
    elif shape == 3:
        claims = good_claims()
        for _ in range(fdp.ConsumeIntInRange(1, 3)):
            name = CLAIMS[fdp.ConsumeIntInRange(0, len(CLAIMS) - 1)]
            if fdp.ConsumeBool():
                claims.pop(name, None)
            else:
                claims[name] = any_json(fdp)
        token = sign(header(alg), json.dumps(claims, ensure_ascii=fdp.ConsumeBool()).encode(), alg)
    else:
        token = sign(header(alg), json.dumps(good_claims()).encode(), alg)
        context = any_json(fdp)
    now = NOW + (fdp.ConsumeIntInRange(-400, 400) if fdp.ConsumeBool() else 0)
    decision = verifier.verify(token, scene, context, now=now)
    assert decision.code in CODES, decision.code
    assert decision.ok == (decision.code == "accepted"), decision
    json.dumps(decision.to_dict(), allow_nan=False)


if __name__ == "__main__":
    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
