"""The issuer's revocation list: the revoked residents' code ids and credentials' ids, as a signed JWS.

``GET /api/v1/revocations`` serves it as the raw compact JWS
(``Content-Type: application/jose``), signed by the issuer's current key:

- header, exactly ``{"alg", "typ", "kid"}`` with ``typ`` ``rsc-revocations+jwt``;
- claims ``{"iss", "iat", "revoked": [sub, ...], "credentials": [cti, ...]}``:
  the issuer, when the list took its current form (seconds since the epoch),
  the revoked code ids, and the revoked device and paper credentials' ids
  (``cti`` in base64url, contract sections 4 and 9). A list without
  ``credentials`` revokes no credential (lists made before section 9).
  Claims a verifier does not know are ignored.

It is checked with the very rules that check a code (:func:`split_token`,
:func:`check_header` with the list's own ``typ``, the key set's signature
check), so a revocation list is never accepted as a code (``wrong_type``) nor
a code as a revocation list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Self

from .contract import SUPPORTED_ALGORITHMS
from .errors import ConfigurationError, Rejection
from .keys import KeySet
from .tokens import VerificationRules, check_header, split_token

REVOCATIONS_TYPE = "rsc-revocations+jwt"
REVOCATIONS_MEDIA_TYPE = "application/jose"  # RFC 7515 section 9.2.1: JWS compact serialization
REVOKED_CLAIM = "revoked"
CREDENTIALS_CLAIM = "credentials"
MAX_REVOCATION_LIST_BYTES = 4 * 1024 * 1024
"""About 165,000 revoked residents (a 16-character ``sub`` costs 25 bytes in the JWS)."""
DEFAULT_LEEWAY = 10


class RevocationListError(ConfigurationError):
    """A revocation list that cannot be used; ``reason`` is the failed rule's code.

    ``reason`` reuses the decision codes of a code's rules where one fits
    (``malformed``, ``wrong_type``, ``alg_not_allowed``, ``unknown_key``,
    ``bad_signature``, ``issuer_mismatch``, ``not_yet_valid``).
    """

    code = "bad_revocation_list"
    default_message = "the revocation list cannot be used"

    def __init__(self, message: str | None = None, *, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class _SignedList(NamedTuple):
    subs: frozenset[str]
    issued_at: int
    kid: str = ""


class RevocationList(_SignedList):
    """A verified revocation list; unpacks as ``subs, issued_at, kid``, as it did before ``credentials``.

    ``credentials``: the revoked device and paper credentials' ids (``cti``
    in base64url); empty for a list without the claim.
    """

    credentials: frozenset[str] = frozenset()

    def __new__(
        cls, subs: frozenset[str], issued_at: int, kid: str = "", credentials: Iterable[str] = ()
    ) -> Self:
        revocations = super().__new__(cls, subs, issued_at, kid)
        revocations.credentials = frozenset(credentials)
        return revocations


_REASONS = {
    "malformed": "it is not a well-formed compact JWS",
    "wrong_type": f"its typ is not {REVOCATIONS_TYPE} (is it a code?)",
    "alg_not_allowed": "its signature algorithm is not allowed for its key",
    "unknown_key": "it was signed by a key this verifier does not know",
}


def verify_revocation_list(
    jws: object,
    keys: KeySet,
    issuer: str,
    now: float,
    *,
    algorithms: Iterable[str] = SUPPORTED_ALGORITHMS,
    leeway: int = DEFAULT_LEEWAY,
) -> RevocationList:
    """The revoked code ids and credential ids, and the list's ``iat``; RevocationListError for anything else.

    In order: size and strict form, header (members, ``typ``, ``alg``,
    ``kid``), signature, claim types, ``iss`` exactly ``issuer``, ``iat`` not
    later than ``now`` plus ``leeway``.
    """
    rules = VerificationRules(issuer=issuer, algorithms=frozenset(algorithms), leeway=leeway)
    try:
        header, claims, signing_input, signature = split_token(jws, max_bytes=MAX_REVOCATION_LIST_BYTES)
        key = check_header(header, keys, rules, typ=REVOCATIONS_TYPE)
    except Rejection as rejection:
        reason = _REASONS.get(rejection.code, rejection.message)
        detail = f" ({rejection.message})" if rejection.code in ("malformed", "alg_not_allowed") else ""
        raise RevocationListError(f"revocation list refused: {reason}{detail}", reason=rejection.code) from None
    if not key.verify(signature, signing_input):
        raise RevocationListError("revocation list refused: its signature is not valid", reason="bad_signature")
    iss, iat, revoked = claims.get("iss"), claims.get("iat"), claims.get(REVOKED_CLAIM)
    credentials = claims.get(CREDENTIALS_CLAIM, [])
    if not (
        type(iss) is str
        and type(iat) is int
        and type(revoked) is list
        and all(type(sub) is str and sub for sub in revoked)
    ):
        raise RevocationListError(
            f"revocation list refused: iss (string), iat (integer) or {REVOKED_CLAIM} "
            "(array of strings) is missing or of the wrong type",
            reason="malformed",
        )
    if type(credentials) is not list or not all(type(cti) is str and cti for cti in credentials):
        raise RevocationListError(
            f"revocation list refused: {CREDENTIALS_CLAIM}, where present, is not an array of strings",
            reason="malformed",
        )
    if iss != issuer:
        raise RevocationListError(
            f"revocation list refused: issued by {iss[:100]!r}, not {issuer!r}", reason="issuer_mismatch"
        )
    if iat > now + leeway:
        raise RevocationListError(
            f"revocation list refused: issued {iat - now:.0f} s in the future; check the clock",
            reason="not_yet_valid",
        )
    return RevocationList(frozenset(revoked), iat, key.kid, frozenset(credentials))
