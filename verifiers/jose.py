"""Strict JOSE building blocks: base64url, JSON without surprises, JWK keys.

Pure functions, shared by the verifier and (for encoding) the issuing service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

B64URL_SEGMENT = re.compile(r"[A-Za-z0-9_-]*\Z")
_B64URL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# For a segment whose length is 2 or 3 mod 4, the last character carries 4 or
# 2 unused low bits that a canonical encoder sets to zero.
_CANONICAL_LAST = {
    2: frozenset(c for i, c in enumerate(_B64URL_CHARS) if i & 0b1111 == 0),
    3: frozenset(c for i, c in enumerate(_B64URL_CHARS) if i & 0b11 == 0),
}


class JoseFormatError(ValueError):
    """Input that is not strict base64url, or not the JSON it must be."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """Decode unpadded, canonical base64url; anything else raises JoseFormatError."""
    if not B64URL_SEGMENT.match(segment):
        raise JoseFormatError("not base64url (alphabet A-Z a-z 0-9 - _, no padding)")
    rest = len(segment) % 4
    if rest == 1:
        raise JoseFormatError("impossible base64url length")
    if rest and segment[-1] not in _CANONICAL_LAST[rest]:
        raise JoseFormatError("non-canonical base64url (unused bits set)")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - guarded above
        raise JoseFormatError(str(exc)) from exc


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise JoseFormatError("duplicate JSON member")
    return obj


def _refuse_constant(name: str) -> Any:
    raise JoseFormatError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
)


_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
"""The decoder's scanner: what ``_DECODER.decode`` runs after skipping leading whitespace."""


def _decode(text: str) -> Any:
    """``_DECODER.decode(text)``, calling its scanner directly when ``text`` is one value with no
    whitespace around it (every code's header and claims): the same value, the same first error."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:  # leading whitespace, or not JSON: decode() skips the one, reports the other
        return _DECODER.decode(text)
    return value if end == len(text) else _DECODER.decode(text)  # whitespace or data after it


def json_object(data: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object with no duplicate members."""
    try:
        value = _decode(data.decode("utf-8"))
    except JoseFormatError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise JoseFormatError(f"not UTF-8 JSON: {exc.__class__.__name__}") from exc
    if type(value) is not dict:
        raise JoseFormatError("not a JSON object")
    if b"\\u" in data:  # an escaped lone surrogate ("\ud800") is JSON text but not UTF-8 text
        try:
            compact_json(value)
        except (UnicodeEncodeError, RecursionError) as exc:
            raise JoseFormatError("a string holds a lone surrogate, which is not UTF-8") from exc
    return value


def compact_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# JWK <-> public keys. Only what the contract allows: OKP/Ed25519 for EdDSA,
# EC/P-256 for ES256.

ALG_FOR_KEY = {("OKP", "Ed25519"): "EdDSA", ("EC", "P-256"): "ES256"}
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def public_key_from_jwk(jwk: dict[str, Any]) -> Ed25519PublicKey | ec.EllipticCurvePublicKey:
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if (kty, crv) == ("OKP", "Ed25519"):
        raw = _coordinate(jwk, "x", 32)
        return Ed25519PublicKey.from_public_bytes(raw)
    if (kty, crv) == ("EC", "P-256"):
        x = _coordinate(jwk, "x", 32)
        y = _coordinate(jwk, "y", 32)
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    raise JoseFormatError(f"unsupported key type kty={kty!r} crv={crv!r}")


def _coordinate(jwk: dict[str, Any], name: str, size: int) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise JoseFormatError(f"member {name!r} missing or not a string")
    raw = b64url_decode(value)
    if len(raw) != size:
        raise JoseFormatError(f"member {name!r} is {len(raw)} bytes, expected {size}")
    return raw


def jwk_from_public_key(key: Ed25519PublicKey | ec.EllipticCurvePublicKey) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization

    if isinstance(key, Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        }
    raise JoseFormatError(f"unsupported key {type(key).__name__}")


def jwk_thumbprint(jwk: dict[str, Any]) -> bytes:
    """RFC 7638 SHA-256 thumbprint of a public JWK (required members only)."""
    required = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in required}, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def kid_for(jwk: dict[str, Any]) -> str:
    """The contract's key id: the first 8 bytes of the thumbprint, base64url (11 chars)."""
    return b64url_encode(jwk_thumbprint(jwk)[:8])
