"""The revocation list the service publishes: revoked residents' code ids and credentials' ids, signed. No Flask here.

Its format is :mod:`verifiers.revocations`' (which checks it): a compact JWS
with header ``{"alg", "typ": "rsc-revocations+jwt", "kid"}`` and claims
``{"iss", "iat", "revoked": [sub, ...], "credentials": [cti, ...]}``, each
list sorted. ``credentials`` names the revoked device and paper credentials
(``cti`` in base64url), each until a day after it expires, and not longer
(contract section 9): by then no verifier accepts it anyway.

``iat`` is when the list took its present form: the latest revocation (of a
resident or a credential), the latest moment a credential left the list, or
the signing key's creation if that is later (the list is then signed anew).
So the list's bytes change only when something is revoked, a credential
leaves it or the key rotates (Ed25519 signatures are deterministic), and its
ETag lets a scanner that holds the current list get a 304. How current a
scanner's copy is, is when the service last confirmed it (the scanner's
``revocations_fetched_at``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from verifiers.jose import b64url_encode, compact_json
from verifiers.revocations import CREDENTIALS_CLAIM, REVOCATIONS_TYPE, REVOKED_CLAIM

from .keystore import Signer
from .models import Credential, Resident, as_utc

# How long the published list may be used: short, so a revocation reaches
# scanners within a minute or two of their sync.
REVOCATIONS_MAX_AGE_SECONDS = 60
# A revoked credential stays listed until this long after its exp (contract section 9).
LISTED_AFTER_EXPIRY = timedelta(days=1)


@dataclass(frozen=True)
class Revoked:
    """Revoked ids (residents' code ids, or credentials' ctis), sorted, and when their list took its form."""

    ids: list[str]
    latest: int | None


def revoked_residents(session: Session) -> Revoked:
    rows = session.execute(select(Resident.code_id, Resident.revoked_at).where(Resident.revoked_at.is_not(None)))
    return _listed(rows)


def revoked_credentials(session: Session, now: datetime) -> Revoked:
    """The revoked credentials' ids listed at ``now``, sorted, and when that list took its form.

    A credential is listed from its ``revoked_at`` until a day after its
    ``expires_at``; ``latest`` is the latest revocation listed or departure
    from the list, whichever is later (None: never any).
    """
    cutoff = now.astimezone(UTC) - LISTED_AFTER_EXPIRY
    rows = session.execute(
        select(Credential.cti, Credential.revoked_at).where(
            Credential.revoked_at.is_not(None), Credential.expires_at >= cutoff
        )
    )
    listed = _listed(rows)
    latest = listed.latest
    departed = session.scalar(
        select(func.max(Credential.expires_at)).where(
            Credential.revoked_at.is_not(None), Credential.expires_at < cutoff
        )
    )
    if departed is not None:
        left = int((as_utc(departed) + LISTED_AFTER_EXPIRY).timestamp())
        latest = left if latest is None else max(latest, left)
    return Revoked(listed.ids, latest)


def _listed(rows: Iterable[tuple[str, datetime | None]]) -> Revoked:
    """(id, revoked_at) rows, every revoked_at set by the query: the ids sorted, and the latest revocation."""
    ids: list[str] = []
    latest: int | None = None
    for identifier, revoked_at in rows:
        assert revoked_at is not None  # the query selects revoked ones only
        ids.append(identifier)
        when = int(as_utc(revoked_at).timestamp())
        latest = when if latest is None else max(latest, when)
    ids.sort()
    return Revoked(ids, latest)


def signing_input(
    *, alg: str, kid: str, issuer: str, subs: list[str], issued_at: int, credentials: list[str] | None = None
) -> str:
    """The JWS's first two segments: deterministic for the same list, key and time."""
    header = {"alg": alg, "typ": REVOCATIONS_TYPE, "kid": kid}
    claims = {
        "iss": issuer,
        "iat": issued_at,
        REVOKED_CLAIM: sorted(subs),
        CREDENTIALS_CLAIM: sorted(credentials or ()),
    }
    return f"{b64url_encode(compact_json(header))}.{b64url_encode(compact_json(claims))}"


def sign(signer: Signer, payload: str) -> str:
    """The compact JWS of a :func:`signing_input` made for ``signer``."""
    return f"{payload}.{b64url_encode(signer.sign(payload.encode('ascii')))}"

