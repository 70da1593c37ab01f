"""Coverage-guided fuzzing of what a verifier takes from the network: key sets and revocation lists.

The property: ``KeySet.from_jwks`` returns a key set or raises
``KeySetError``; ``verify_revocation_list`` returns a list or raises
``RevocationListError``. Nothing else escapes, whatever the JWKS holds
(a good key with members dropped or replaced, any JSON, any text) and
whatever the claims of a correctly signed revocation list are.

Usage (see fuzz/README.md)::

    python fuzz/keys_target.py CORPUS_DIR -max_total_time=300
"""

from __future__ import annotations

import json
import sys

import atheris
from common import ISSUER, NOW, any_json, b64url, key_set, public_jwks, sign

from verifiers import KeySet, KeySetError, RevocationListError, verify_revocation_list
from verifiers.revocations import REVOCATIONS_TYPE

JWK_MEMBERS = ("kty", "crv", "x", "y", "kid", "alg", "use", "d")
GOOD_KEYS = public_jwks()
KEYS = key_set()
LIST_HEADER = json.dumps({"alg": "EdDSA", "typ": REVOCATIONS_TYPE, "kid": "edkid000000"}).encode()


def jwks_from(fdp: atheris.FuzzedDataProvider) -> object:
    shape = fdp.ConsumeIntInRange(0, 3)
    if shape == 0:  # a good key with members dropped or replaced
        jwk = dict(GOOD_KEYS[fdp.ConsumeIntInRange(0, 1)])
        for _ in range(fdp.ConsumeIntInRange(1, 3)):
            name = JWK_MEMBERS[fdp.ConsumeIntInRange(0, len(JWK_MEMBERS) - 1)]
            if fdp.ConsumeBool():
                jwk.pop(name, None)
            elif fdp.ConsumeBool():
                jwk[name] = b64url(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 66)))
            else:
                jwk[name] = any_json(fdp, JWK_MEMBERS)
        return {"keys": [jwk]}
    if shape == 1:
        return {"keys": any_json(fdp, JWK_MEMBERS)}
    if shape == 2:
        return any_json(fdp, ("keys", *JWK_MEMBERS))
    try:
        return json.loads(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 2000)))
    except ValueError:
        return None


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    jwks = jwks_from(fdp)
    if isinstance(jwks, dict):
        try:
            KeySet.from_jwks(jwks)
        except KeySetError:
            pass
    if fdp.ConsumeBool():
        claims = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300))
    else:
        issuer = ISSUER if fdp.ConsumeBool() else any_json(fdp)
        claims = json.dumps({"iss": issuer, "iat": any_json(fdp), "revoked": any_json(fdp)}).encode()
    try:
        verify_revocation_list(sign(LIST_HEADER, claims, "EdDSA"), KEYS, ISSUER, NOW)
    except RevocationListError:
        pass


if __name__ == "__main__":
    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
