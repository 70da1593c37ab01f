"""KeySet: the issuer's public keys, parsed once, looked up by ``kid``."""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .errors import KeySetError
from .jose import (
    ALG_FOR_KEY,
    PRIVATE_MEMBERS,
    JoseFormatError,
    json_object,
    public_key_from_jwk,
)

MAX_KID_LENGTH = 64
MAX_JWKS_BYTES = 256 * 1024
FETCH_TIMEOUT_SECONDS = 10

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    alg: str
    public_key: Ed25519PublicKey | ec.EllipticCurvePublicKey
    jwk: Mapping[str, Any]
    verify: Callable[[bytes, bytes], bool]
    """``verify(signature, signing_input)``: True when the JWS signature is valid."""


def _ed25519_verifier(key: Ed25519PublicKey) -> Callable[[bytes, bytes], bool]:
    check = key.verify

    def verify(signature: bytes, signing_input: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            check(signature, signing_input)
        except InvalidSignature:
            return False
        return True

    return verify


def _es256_verifier(key: ec.EllipticCurvePublicKey) -> Callable[[bytes, bytes], bool]:
    check = key.verify

    def verify(signature: bytes, signing_input: bytes) -> bool:
        # RFC 7518 section 3.4: exactly r || s, 32 bytes each. A length
        # check first: splitting a 63- or 65-byte value "in half" is how
        # verifiers came to accept Wycheproof's SignatureSize cases.
        if len(signature) != 64:
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        try:
            check(encode_dss_signature(r, s), signing_input, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True

    return verify


def verification_key(jwk: Mapping[str, Any]) -> VerificationKey:
    """Parse one public JWK of the contract's kinds; KeySetError otherwise."""
    if not isinstance(jwk, Mapping):
        raise KeySetError("a key in the JWKS is not a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        raise KeySetError(f"a key has no usable kid (a string of 1 to {MAX_KID_LENGTH} characters): {kid!r}")
    private = PRIVATE_MEMBERS.intersection(jwk)
    if private:
        raise KeySetError(f"key {kid}: the JWKS holds private key members {sorted(private)}; refusing it")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    alg = ALG_FOR_KEY.get((kty, crv)) if isinstance(kty, str) and isinstance(crv, str) else None
    if alg is None:
        raise KeySetError(f"key {kid}: unknown key type kty={jwk.get('kty')!r} crv={jwk.get('crv')!r}")
    if jwk.get("alg", alg) != alg:
        raise KeySetError(f"key {kid}: alg {jwk.get('alg')!r} does not fit a {jwk.get('crv')} key")
    if jwk.get("use", "sig") != "sig":
        raise KeySetError(f"key {kid}: use {jwk.get('use')!r} is not 'sig'")
    try:
        public_key = public_key_from_jwk(dict(jwk))
    except (JoseFormatError, ValueError) as exc:
        raise KeySetError(f"key {kid}: {exc}") from exc
    verify = (
        _ed25519_verifier(public_key)  # type: ignore[arg-type]
        if alg == "EdDSA"
        else _es256_verifier(public_key)  # type: ignore[arg-type]
    )
    return VerificationKey(kid=kid, alg=alg, public_key=public_key, jwk=dict(jwk), verify=verify)


class KeySet(Mapping[str, VerificationKey]):
    """An immutable mapping ``kid -> VerificationKey``."""

    def __init__(self, keys: list[VerificationKey] | tuple[VerificationKey, ...] = ()) -> None:
        by_kid: dict[str, VerificationKey] = {}
        for key in keys:
            if key.kid in by_kid:
                raise KeySetError(f"duplicate kid {key.kid!r} in the key set")
            by_kid[key.kid] = key
        self._by_kid = by_kid

    def __getitem__(self, kid: str) -> VerificationKey:
        return self._by_kid[kid]

    def get(self, kid: object, default: Any = None) -> Any:
        # Tolerates unhashable kids from hostile headers.
        return self._by_kid.get(kid, default) if isinstance(kid, str) else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_kid)

    def __len__(self) -> int:
        return len(self._by_kid)

    def __repr__(self) -> str:
        return f"KeySet({sorted(self._by_kid)})"

    def to_jwks(self) -> dict[str, Any]:
        return {"keys": [dict(key.jwk) for key in self._by_kid.values()]}

    @classmethod
    def from_jwks(cls, source: Mapping[str, Any] | str | os.PathLike[str]) -> KeySet:
        """Build from a JWKS dict, a file path, or a URL (https; http only on loopback)."""
        if isinstance(source, Mapping):
            return cls._from_dict(source)
        if isinstance(source, str) and "://" in source:
            return cls._from_dict(json_from_bytes(fetch_url(source)[0], source))
        path = Path(source)
        try:
            data = path.read_bytes()
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
            raise KeySetError(f"{path}: cannot read the key set: {getattr(exc, 'strerror', None) or exc}") from exc
        return cls._from_dict(json_from_bytes(data, str(path)))

    @classmethod
    def _from_dict(cls, jwks: Mapping[str, Any]) -> KeySet:
        keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(keys, list):
            raise KeySetError("not a JWKS: expected an object with a 'keys' array")
        return cls([verification_key(jwk) for jwk in keys])


def json_from_bytes(data: bytes, origin: str) -> dict[str, Any]:
    if len(data) > MAX_JWKS_BYTES:
        raise KeySetError(f"{origin}: the key set is larger than {MAX_JWKS_BYTES} bytes")
    try:
        return json_object(data)
    except JoseFormatError as exc:
        raise KeySetError(f"{origin}: not a JSON key set ({exc})") from exc


def check_url(url: str) -> None:
    """https anywhere; plain http only to a loopback address (a scanner's local proxy, tests)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return
    raise KeySetError(f"{url}: only https URLs (or http on loopback) are allowed")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is reported as such, never followed to another host or scheme


def opener(url: str) -> urllib.request.OpenerDirector:
    # Environment proxies apply, except to loopback (a scanner's local relay, tests).
    local = _is_loopback(urllib.parse.urlsplit(url).hostname or "")
    proxies = urllib.request.ProxyHandler({}) if local else urllib.request.ProxyHandler()
    return urllib.request.build_opener(proxies, _NoRedirects)


def fetch_url(url: str, headers: Mapping[str, str] | None = None) -> tuple[bytes, Mapping[str, str]]:
    """GET a URL with the rules above; returns the body and response headers."""
    check_url(url)
    request = urllib.request.Request(url, headers={"Accept": "application/json", **(headers or {})})
    try:
        with opener(url).open(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
            body = response.read(MAX_JWKS_BYTES + 1)
            return body, dict(response.headers)
    except (OSError, ValueError) as exc:
        raise KeySetError(f"{url}: cannot fetch the key set: {exc}") from exc

