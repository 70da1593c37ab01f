"""The code's verification rules 1-5 of contract section 2, in order.

Pure: a token, a key set and ``now`` in, a :class:`VerifiedCode` out, or the
first failing rule's :class:`~verifiers.errors.Rejection`.
:func:`check_jws` is the JWS form's own rules (1-4), beside
:func:`verifiers.offline_codes.check_offline_code` for section 9's forms;
the scene (5), revocation, replay and the scene's rules (6-8) are shared by
every form and live in :mod:`verifiers.verifier`; of those, :func:`check_scene`
is here, and :func:`check_times` (rule 4's second part) serves section 9's
credentials too.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from .contract import (
    CATEGORIES,
    DEFAULT_LEEWAY_SECONDS,
    MAX_LIFETIME_SECONDS,
    MAX_TOKEN_BYTES,
    SUPPORTED_ALGORITHMS,
    TOKEN_TYPE,
)
from .errors import (
    AlgNotAllowed,
    BadSignature,
    Expired,
    IssuerMismatch,
    Malformed,
    NotYetValid,
    Rejection,
    SceneNotAllowed,
    UnknownKey,
    WrongType,
)
from .jose import _CANONICAL_LAST, JoseFormatError, json_object
from .keys import KeySet

HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})

_COMPACT_JWS = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\Z")


@dataclass(slots=True)
class VerifiedCode:
    """A code whose signature and claim types are good."""

    iss: str
    sub: str
    jti: str
    iat: int
    exp: int
    scopes: tuple[str, ...]
    category: str | None
    kid: str
    form: str = "online"
    """``online`` (the JWS of section 1), ``device`` or ``paper`` (section 9)."""
    cti: str | None = None
    """Section 9: the credential's id, base64url (``jti`` is it, plus ``-t`` for a device code)."""
    t: int | None = None
    """Section 9, device codes: the presentation time."""
    check_id: dict[str, str] | None = None
    """Section 9, paper codes: the holder hint the staff compare with the ID card."""


@dataclass(frozen=True, slots=True)
class VerificationRules:
    issuer: str
    algorithms: frozenset[str] = frozenset(SUPPORTED_ALGORITHMS)
    leeway: int = DEFAULT_LEEWAY_SECONDS


_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"", b"==", b"=")


def _segment(segment: str, standard: bytes) -> bytes:
    """Decode one base64url segment, given as its already-translated ASCII bytes.

    The caller's regex has checked the alphabet; here: length and canonical
    trailing bits, then a plain base64 decode.
    """
    rest = len(segment) & 3
    if rest == 1 or (rest and segment[-1] not in _CANONICAL_LAST[rest]):
        raise Malformed("a segment is not canonical base64url")
    try:
        return binascii.a2b_base64(standard + _PADDING[rest], strict_mode=True)
    except binascii.Error as exc:  # pragma: no cover - the regex guards this
        raise Malformed("a segment is not base64url") from exc


def split_token(
    token: object, *, max_bytes: int = MAX_TOKEN_BYTES
) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Rule 1: size, form, strict base64url, JSON objects without duplicate members.

    Returns ``(header, claims, signing_input, signature)``. ``max_bytes`` is
    the code's limit unless given (a revocation list is longer).
    """
    if not isinstance(token, str):
        raise Malformed("the code is not text")
    if len(token) > max_bytes:  # before any decoding; non-ASCII fails the match below
        raise Malformed(f"the code is longer than {max_bytes} bytes")
    match = _COMPACT_JWS.match(token)
    if match is None:
        raise Malformed("the code is not three base64url segments (no padding, no whitespace)")
    header_b64, claims_b64, signature_b64 = match.groups()
    ascii_token = token.encode("ascii")
    standard = ascii_token.translate(_TO_STANDARD_ALPHABET)
    header_end, claims_end = match.end(1), match.end(2)
    try:
        header = json_object(_segment(header_b64, standard[:header_end]))
        claims = json_object(_segment(claims_b64, standard[header_end + 1 : claims_end]))
    except JoseFormatError as exc:
        raise Malformed(f"the code's header or claims are not a JSON object: {exc}") from exc
    signature = _segment(signature_b64, standard[claims_end + 1 :])
    return header, claims, ascii_token[:claims_end], signature


def check_header(
    header: dict[str, Any], keys: KeySet, rules: VerificationRules, typ: str = TOKEN_TYPE
) -> Any:
    """Rule 2: the header's members, type, algorithm and key. Returns the key.

    ``typ`` is a code's unless given: a revocation list is checked by the
    same rule with its own type, so neither is ever taken for the other.
    """
    if not HEADER_MEMBERS.issuperset(header):
        extra = sorted(set(header) - HEADER_MEMBERS)
        raise Malformed(f"the header carries members a code never has: {', '.join(extra)}")
    if header.get("typ") != typ:
        raise WrongType()
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in rules.algorithms:
        raise AlgNotAllowed(f"algorithm {alg!r} is not allowed")
    key = keys.get(header.get("kid"))
    if key is None:
        raise UnknownKey()
    if key.alg != alg:
        raise AlgNotAllowed(f"key {key.kid} is a {key.alg} key, not {alg}")
    return key


def _is_int(value: object) -> TypeGuard[int]:
    # bool is a subclass of int in Python; JSON true is not a NumericDate.
    return type(value) is int


def _is_storable_text(value: object) -> TypeGuard[str]:
    """Non-empty text that a usage record can hold: ``sub`` and ``jti`` are stored, and PostgreSQL refuses
    NUL in text.

    (A lone surrogate never gets this far: the claims' JSON is refused for it.)
    """
    return type(value) is str and value != "" and "\x00" not in value


def read_claims(claims: dict[str, Any], kid: str) -> VerifiedCode:
    """Rule 4, first part: required claims, their types, the lifetime."""
    iat, exp, scopes = claims.get("iat"), claims.get("exp"), claims.get("scp")
    if not (
        _is_int(iat)
        and _is_int(exp)
        and type(claims.get("iss")) is str  # any other issuer, "" too, is issuer_mismatch below
        and _is_storable_text(claims.get("sub"))
        and _is_storable_text(claims.get("jti"))
        and type(scopes) is list
        and all(type(scope) is str for scope in scopes)
    ):
        raise Malformed("a required claim is missing or of the wrong type")
    category = claims.get("cat")
    if category is not None and (type(category) is not str or category not in CATEGORIES):
        raise Malformed("the category claim is not one of senior, student, disabled, child")
    if not 1 <= exp - iat <= MAX_LIFETIME_SECONDS:
        raise Malformed(f"the code's lifetime is outside 1..{MAX_LIFETIME_SECONDS} seconds")
    return VerifiedCode(
        iss=claims["iss"],
        sub=claims["sub"],
        jti=claims["jti"],
        iat=iat,
        exp=exp,
        scopes=tuple(scopes),
        category=category,
        kid=kid,
    )


def check_times(
    code: VerifiedCode,
    rules: VerificationRules,
    now: float,
    *,
    expired: str | None = None,
    not_yet_valid: str | None = None,
) -> None:
    """Rule 4, second part, for every form: issuer, expiry, issued-at (a JWS's, or a credential's).

    ``expired`` and ``not_yet_valid`` say it in the form's words (the rejections' defaults otherwise).
    """
    if code.iss != rules.issuer:
        raise IssuerMismatch()
    if now > code.exp + rules.leeway:
        raise Expired(expired)
    if code.iat > now + rules.leeway:
        raise NotYetValid(not_yet_valid)


def check_scene(code: VerifiedCode, scene: str) -> None:
    """Rule 5 (section 9's rule 6, first part): the scene is one the code names in ``scp``."""
    if scene not in code.scopes:
        raise SceneNotAllowed(f"the code is not valid for {scene!r}")


def check_jws(token: object, keys: KeySet, rules: VerificationRules, now: float) -> VerifiedCode:
    """Rules 1-4 of contract section 2, in order: the JWS form's own; the first failure is raised.

    A rejection raised once the signature and claim types are good carries
    the code in ``rejection.verified``, so a decision can name the resident
    and the code; before that nothing in the token is trusted.
    """
    header, claims, signing_input, signature = split_token(token)
    key = check_header(header, keys, rules)
    if not key.verify(signature, signing_input):
        raise BadSignature()
    code = read_claims(claims, key.kid)
    try:
        check_times(code, rules, now)
    except Rejection as rejection:
        rejection.verified = code
        raise
    return code
