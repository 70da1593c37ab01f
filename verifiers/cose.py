"""COSE_Sign1 (RFC 9052, tag 18) and the P-256 COSE_Key of contract section 9.

Parsing is strict and structural only (what rule 1 asks): :func:`parse_sign1`
gives the four members with the protected header's exact bytes and decoded
map, or raises :class:`CoseFormatError`. Which header members a form allows
is the caller's (:mod:`verifiers.offline_codes`). Signatures are always over
:func:`sig_structure`, RFC 9052's ``["Signature1", protected, h'', payload]``.

The encode side (:func:`sign1`) mints with any ``sign(bytes) -> bytes``
callable (the service's Signer, a test key), so the service and the tests
build exactly what verifiers read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from . import cbor

ALG_EDDSA = -8
ALG_ES256 = -7
JOSE_ALG = {ALG_EDDSA: "EdDSA", ALG_ES256: "ES256"}
"""COSE algorithm identifiers (RFC 9053) and the JOSE names the key set uses."""
HEADER_ALG = 1
HEADER_KID = 4

# COSE_Key (RFC 9052 7, RFC 9053 7.1): kty EC2, crv P-256, x, y (here its sign bit).
KEY_KTY, KEY_CRV, KEY_X, KEY_Y = 1, -1, -2, -3
KTY_EC2, CRV_P256 = 2, 1

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_P256 = ec.SECP256R1()


class CoseFormatError(ValueError):
    """Not a COSE_Sign1 of the shape section 9 uses."""


@dataclass(frozen=True, slots=True)
class Sign1:
    protected_bytes: bytes
    protected: dict[Any, Any]
    payload: bytes
    signature: bytes

    def to_be_signed(self) -> bytes:
        return sig_structure(self.protected_bytes, self.payload)


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 4.4: ``["Signature1", protected, h'', payload]``, deterministically encoded."""
    return b"".join(
        (b"\x84\x6aSignature1", cbor.dumps(protected), b"\x40", cbor.dumps(payload))
    )


def parse_sign1(data: bytes) -> Sign1:
    """Tag 18 around ``[protected bstr, {} , payload bstr, signature bstr]``; the protected bytes decoded.

    Every item is strict CBOR (:func:`verifiers.cbor.loads`); the protected
    header must decode to a map and the unprotected one must be empty.
    """
    try:
        item = cbor.loads(data)
    except cbor.CborError as exc:
        raise CoseFormatError(str(exc)) from None
    return sign1_from_item(item)


def sign1_from_item(item: Any) -> Sign1:
    if type(item) is not cbor.Tag or item.tag != 18:
        raise CoseFormatError("not a COSE_Sign1 (tag 18)")
    members = item.value
    if type(members) is not list or len(members) != 4:
        raise CoseFormatError("a COSE_Sign1 is an array of four members")
    protected_bytes, unprotected, payload, signature = members
    if type(protected_bytes) is not bytes or type(payload) is not bytes or type(signature) is not bytes:
        raise CoseFormatError("the protected header, payload and signature must be byte strings")
    if type(unprotected) is not dict:
        raise CoseFormatError("the unprotected header must be a map")
    if unprotected:
        raise CoseFormatError("the unprotected header must be empty")
    try:
        protected = cbor.loads(protected_bytes) if protected_bytes else {}
    except cbor.CborError as exc:
        raise CoseFormatError(f"the protected header: {exc}") from None
    if type(protected) is not dict:
        raise CoseFormatError("the protected header must be a map")
    return Sign1(protected_bytes, protected, payload, signature)


def sign1(protected: dict[Any, Any], payload: bytes, sign: Callable[[bytes], bytes]) -> bytes:
    """Mint a tagged COSE_Sign1: ``sign`` gets the Sig_structure and returns the raw signature."""
    protected_bytes = cbor.dumps(protected)
    signature = sign(sig_structure(protected_bytes, payload))
    return cbor.dumps(cbor.Tag(18, [protected_bytes, {}, payload, signature]))


def p256_key_from_cose(cose_key: Any) -> ec.EllipticCurvePublicKey:
    """The public key of a COSE_Key exactly ``{1: 2, -1: 1, -2: x, -3: bool}``; point decompression.

    ValueError for any other shape, an x of another length, or an x with no
    point on P-256.
    """
    if type(cose_key) is not dict or len(cose_key) != 4:
        raise ValueError("the COSE_Key is not a map of kty, crv, x and y")
    x, y_odd = cose_key.get(KEY_X), cose_key.get(KEY_Y)
    if (
        type(cose_key.get(KEY_KTY)) is not int
        or cose_key[KEY_KTY] != KTY_EC2
        or type(cose_key.get(KEY_CRV)) is not int
        or cose_key[KEY_CRV] != CRV_P256
        or type(x) is not bytes
        or len(x) != 32
        or type(y_odd) is not bool
    ):
        raise ValueError("the COSE_Key is not a compressed P-256 point (kty 2, crv 1, 32-byte x, boolean y)")
    # SEC1 2.3.4: 02 || x for an even y, 03 || x for an odd one; OpenSSL
    # refuses an x >= p or one with no square root (off the curve).
    return ec.EllipticCurvePublicKey.from_encoded_point(_P256, (b"\x03" if y_odd else b"\x02") + x)


def cose_key_from_p256(public_key: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    """The compressed COSE_Key of a P-256 public key (what a credential's cnf holds)."""
    numbers = public_key.public_numbers()
    return {
        KEY_KTY: KTY_EC2,
        KEY_CRV: CRV_P256,
        KEY_X: numbers.x.to_bytes(32, "big"),
        KEY_Y: bool(numbers.y & 1),
    }


def verify_es256(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """RFC 9053 2.1: r || s, 32 bytes each (a DER signature or any other length is False); high-S accepted."""
    if len(signature) != 64:
        return False
    try:
        public_key.verify(
            encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")),
            data,
            _ECDSA_SHA256,
        )
    except InvalidSignature:
        return False
    return True
