"""The revocation list the service publishes: revoked residents' code ids, signed. No Flask here.

Its format is :mod:`verifiers.revocations`' (which checks it): a compact JWS
with header ``{"alg", "typ": "rsc-revocations+jwt", "kid"}`` and claims
``{"iss", "iat", "revoked": [sub, ...]}``, the ``sub`` sorted.

``iat`` is when the list took its present form: the latest revocation, or the
signing key's creation if that is later (the list is then signed anew). So
the list's bytes change only when a resident is revoked or the key rotates
(Ed25519 signatures are deterministic), and its ETag lets a scanner that
holds the current list get a 304. How current a scanner's copy is, is when
the service last confirmed it (the scanner's ``revocations_fetched_at``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from verifiers.jose import b64url_encode, compact_json
from verifiers.revocations import REVOCATIONS_TYPE, REVOKED_CLAIM

from .keystore import Signer
from .models import Resident

# How long the published list may be used: short, so a revocation reaches
# scanners within a minute or two of their sync.
REVOCATIONS_MAX_AGE_SECONDS = 60


@dataclass(frozen=True)
class Revoked:
    """The revoked residents' code ids, sorted, and the time of the latest revocation."""

    subs: list[str]
    latest: int | None


def revoked_residents(session: Session) -> Revoked:
    rows = session.execute(select(Resident.code_id, Resident.revoked_at).where(Resident.revoked_at.is_not(None)))
    subs: list[str] = []
    latest: int | None = None
    for code_id, revoked_at in rows:
        assert revoked_at is not None  # the query selects revoked residents only
        subs.append(code_id)
        when = int(_as_utc(revoked_at).timestamp())
        latest = when if latest is None else max(latest, when)
    subs.sort()
    return Revoked(subs, latest)


def signing_input(*, alg: str, kid: str, issuer: str, subs: list[str], issued_at: int) -> str:
    """The JWS's first two segments: deterministic for the same list, key and time."""
    header = {"alg": alg, "typ": REVOCATIONS_TYPE, "kid": kid}
    claims = {"iss": issuer, "iat": issued_at, REVOKED_CLAIM: sorted(subs)}
    return f"{b64url_encode(compact_json(header))}.{b64url_encode(compact_json(claims))}"


def sign(signer: Signer, payload: str) -> str:
    """The compact JWS of a :func:`signing_input` made for ``signer``."""
    return f"{payload}.{b64url_encode(signer.sign(payload.encode('ascii')))}"


def _as_utc(value: datetime) -> datetime:
    # SQLite hands times back naive, in UTC as stored.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
