"""Minting section 9's device and paper codes for tests, with the test keys of conftest.

Everything goes through the library's own encode side
(:func:`verifiers.offline_codes.mint_credential`, :func:`device_code`), the
one the service uses; tests that need a broken structure build it with
:mod:`verifiers.cbor` and :func:`verifiers.cose.sign1` directly.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from helpers import ALL_SCENES, ISSUER, NOW, TestKey

from verifiers.cose import cose_key_from_p256
from verifiers.jose import b64url_decode
from verifiers.offline_codes import device_code, mint_credential, paper_code

HINT = {"n": "张*明", "b": "0521", "i": "123X"}


@dataclass
class DeviceKey:
    """A phone's P-256 key: signs presentations r||s."""

    __test__ = False
    private_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def cose_key(self) -> dict[int, Any]:
        return cose_key_from_p256(self.private_key.public_key())

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.private_key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def credential_claims(
    use: str = "device", *, device: DeviceKey | None = None, now: int = NOW, **overrides: Any
) -> dict[Any, Any]:
    """The claims of a valid credential (a device one names ``device``'s key); ``overrides`` by label.

    Labels that are not identifiers are given as ``{label: value}`` in
    ``overrides["labels"]``; a value of ``None`` there removes the claim.
    """
    claims: dict[Any, Any] = {
        1: ISSUER,
        2: "q1w2e3r4t5y6u7i8",
        4: now + 86400,
        6: now - 30,
        7: secrets.token_bytes(8),
        "use": use,
        "scp": list(ALL_SCENES),
    }
    if use == "device":
        claims[8] = {1: (device or DeviceKey()).cose_key}
    else:
        claims["hint"] = dict(HINT)
    for label, value in {**overrides.pop("labels", {}), **overrides}.items():
        if value is None:
            claims.pop(label, None)
        else:
            claims[label] = value
    return claims


def credential(issuer_key: TestKey, claims: dict[Any, Any]) -> bytes:
    return mint_credential(claims, alg=issuer_key.alg, kid=b64url_decode(issuer_key.kid), sign=issuer_key.sign)


def a_device_code(
    issuer_key: TestKey, *, device: DeviceKey | None = None, t: int = NOW - 5, **overrides: Any
) -> str:
    device = device or DeviceKey()
    return device_code(credential(issuer_key, credential_claims("device", device=device, **overrides)), t, device.sign)


def a_paper_code(issuer_key: TestKey, **overrides: Any) -> str:
    return paper_code(credential(issuer_key, credential_claims("paper", **overrides)))
