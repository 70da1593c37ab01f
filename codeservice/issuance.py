"""Claims -> a signed resident code (contract section 1). No Flask here.

The compact JWS is built by hand rather than through pyjwt: the header's and
claims' member order and the compact JSON are fixed, which keeps the code
short (and its QR small) and the output byte-for-byte predictable.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from functools import lru_cache

from verifiers.contract import CATEGORIES, DEFAULT_ISSUER, TOKEN_TYPE
from verifiers.contract import MAX_LIFETIME_SECONDS as MAX_TTL
from verifiers.jose import b64url_encode, compact_json

from .errors import KeyStoreError
from .keystore import Signer

DEFAULT_TTL = 60
MIN_TTL = 15
SIGNATURE_BYTES = 64  # Ed25519, and ES256 as r||s
_CODE_ID = re.compile(r"[A-Za-z0-9_-]{16}\Z")


def new_code_id() -> str:
    """A fresh resident code id (``sub``): 96 random bits, base64url, 16 characters."""
    return b64url_encode(secrets.token_bytes(12))


def new_jti() -> str:
    """A fresh code id (``jti``): 64 random bits, base64url, 11 characters."""
    return b64url_encode(secrets.token_bytes(8))


def issue_code(
    signer: Signer,
    *,
    sub: str,
    scopes: Sequence[str],
    category: str | None,
    now: int,
    ttl: int = DEFAULT_TTL,
    issuer: str = DEFAULT_ISSUER,
) -> str:
    """A resident's code valid from ``now`` for ``ttl`` seconds, as a compact JWS."""
    if type(now) is not int:
        raise TypeError(f"now must be an int (seconds since the epoch), got {type(now).__name__}")
    if type(ttl) is not int or not MIN_TTL <= ttl <= MAX_TTL:
        raise ValueError(f"ttl must be an integer from {MIN_TTL} to {MAX_TTL} seconds, got {ttl!r}")
    if not isinstance(sub, str) or not _CODE_ID.match(sub):
        # Catches e.g. a database id passed by mistake: the contract wants a random id.
        raise ValueError("sub must be a resident code id: 16 base64url characters (new_code_id())")
    if not isinstance(issuer, str) or not issuer:
        raise ValueError("issuer must be a non-empty string")
    if isinstance(scopes, (str, bytes)) or not isinstance(scopes, Sequence):
        raise TypeError("scopes must be a sequence of scene names, not a single string")
    scp = list(scopes)
    if not scp or not all(isinstance(s, str) and s for s in scp):
        raise ValueError("scopes must hold at least one non-empty scene name")
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)} or None, got {category!r}")

    claims: dict[str, object] = {
        "iss": issuer,
        "sub": sub,
        "iat": now,
        "exp": now + ttl,
        "jti": new_jti(),
        "scp": scp,
    }
    if category is not None:
        claims["cat"] = category
    signing_input = f"{_header_segment(signer.alg, signer.kid)}.{b64url_encode(compact_json(claims))}"
    signature = signer.sign(signing_input.encode("ascii"))
    if len(signature) != SIGNATURE_BYTES:
        # e.g. a DER-encoded ECDSA signature from a new Signer implementation
        raise KeyStoreError(
            f"signer {signer.kid} returned a {len(signature)}-byte signature; "
            f"a JWS {signer.alg} signature is {SIGNATURE_BYTES} bytes"
        )
    return f"{signing_input}.{b64url_encode(signature)}"


@lru_cache(maxsize=32)
def _header_segment(alg: str, kid: str) -> str:
    return b64url_encode(compact_json({"alg": alg, "typ": TOKEN_TYPE, "kid": kid}))
