"""What the fuzz targets share: two throwaway signing keys, their key set, a JSON value generator."""

from __future__ import annotations

import base64
from typing import Any

import atheris
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifiers import KeySet

ISSUER = "urn:codeservice:dev"
NOW = 1_800_000_000
ED25519 = Ed25519PrivateKey.generate()
P256 = ec.generate_private_key(ec.SECP256R1())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwks() -> list[dict[str, str]]:
    numbers = P256.public_key().public_numbers()
    return [
        {"kty": "OKP", "crv": "Ed25519", "x": b64url(ED25519.public_key().public_bytes_raw()),
         "kid": "edkid000000", "alg": "EdDSA", "use": "sig"},
        {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big")),
         "y": b64url(numbers.y.to_bytes(32, "big")), "kid": "eckid000000", "alg": "ES256", "use": "sig"},
    ]


def key_set() -> KeySet:
    return KeySet.from_jwks({"keys": public_jwks()})


def sign(header: bytes, claims: bytes, alg: str) -> str:
    """A compact JWS of exactly these header and claims bytes."""
    signing_input = f"{b64url(header)}.{b64url(claims)}"
    if alg == "EdDSA":
        signature = ED25519.sign(signing_input.encode())
    else:
        r, s = decode_dss_signature(P256.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{b64url(signature)}"


def any_json(fdp: atheris.FuzzedDataProvider, names: tuple[str, ...] = (), depth: int = 0) -> Any:
    """Any JSON value (and floats JSON cannot hold), nested up to three levels.

    Object keys come from ``names`` when given.
    """
    kind = fdp.ConsumeIntInRange(0, 8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(8)
    if kind == 3:
        return fdp.ConsumeFloat()
    if kind in (4, 5):
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 24))
    if kind == 6:
        return [any_json(fdp, names, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]

    def key() -> str:
        if names and fdp.ConsumeBool():
            return names[fdp.ConsumeIntInRange(0, len(names) - 1)]
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 12))

    return {key(): any_json(fdp, names, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 5))}
