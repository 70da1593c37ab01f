"""Paper codes (contract section 9): a credential printed on a card for a resident without a phone. No Flask.

:func:`issue_paper_code` signs a paper credential through the service's
:class:`~codeservice.keystore.Signer`, records it in the ``credentials``
table (``use`` ``paper``, no device) and revokes the resident's previous
paper credential that has not expired: a resident holds one live card, and
the one it replaces joins the revocation list (its ``cti``, until a day
after its ``exp``). The card to print is made with it
(:func:`codeservice.paper_card.render_card`, its serial the ``cti``).

The credential carries, besides section 1's claims, the holder hint that
staff compare with the ID card: the name masked as the web view shows it,
the birth month and day of a resident ID holder and the ID number's last
four characters, read from the resident's encrypted record; nothing more.
Nothing personal is logged: one line on ``codeservice.audit`` names the
resident's database id and the credential's ``cti``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from verifiers.offline_codes import PAPER, paper_code

from . import credentials, paper_card
from .errors import CodeRevoked, InvalidField, ResidentNotFound
from .keystore import Signer
from .models import Credential, Resident, as_utc
from .pii import DataKeys
from .residents import ID_NUMBER_PURPOSE, find_by_phone

__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "PaperCode", "holder_hint", "issue_paper_code"]

audit_log = logging.getLogger("codeservice.audit")

DEFAULT_DAYS = 30
MAX_DAYS = 180  # contract section 9: a paper credential lives at most 15552000 s


@dataclass(frozen=True)
class PaperCode:
    """A paper code as issued: its text (``RSP1:…``), the claims a card shows, and what it replaced."""

    text: str
    cti: str
    """The credential's id in base64url: the card's serial, the ``credentials`` row's key."""
    hint: dict[str, str]
    issued_at: int
    expires_at: int
    resident_id: int
    replaced: tuple[str, ...]
    """The ``cti`` of the paper credentials this one revoked."""
    card: bytes
    """The printable card (:func:`codeservice.paper_card.render_card`): its serial is the ``cti``."""


def holder_hint(resident: Resident, keys: DataKeys) -> dict[str, str]:
    """``{"n", "b", "i"}``: the masked name, a resident ID's birth "MMDD" (else absent), the ID's last 4."""
    id_number = keys.decrypt(resident.id_number_encrypted, purpose=ID_NUMBER_PURPOSE)
    if len(id_number) < 4:  # a closed (reassigned) account keeps no ID number
        raise CodeRevoked("this resident holds no identity document; no paper code is issued")
    hint = {"n": resident.name}  # stored masked, as the web view shows it
    if resident.id_type == "resident_id" and resident.birth_date is not None:
        hint["b"] = resident.birth_date.strftime("%m%d")
    hint["i"] = id_number[-4:]
    return hint


def issue_paper_code(
    session: Session,
    keys: DataKeys,
    signer: Signer,
    *,
    phone: str,
    days: int = DEFAULT_DAYS,
    scopes: tuple[str, ...] | list[str],
    issuer: str,
    senior_age: int,
    now: datetime,
    render_card: Callable[..., bytes] = paper_card.render_card,
) -> PaperCode:
    """A new paper code and its card for the resident with this phone, valid ``days`` days from ``now``; committed.

    InvalidField (``invalid_days``) for days outside 1..180, ResidentNotFound
    for an unknown phone, CodeRevoked for a revoked resident. The resident's
    previous paper credentials that have not expired are revoked at ``now``.
    The card is made before anything is stored: a card that cannot be made
    (:class:`~codeservice.paper_card.FontNotFound`, say) issues nothing.
    """
    if type(days) is not int or not 1 <= days <= MAX_DAYS:
        raise InvalidField("days", f"--days must be a whole number of days from 1 to {MAX_DAYS}", code="invalid_days")
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime, e.g. datetime.now(UTC)")
    resident = find_by_phone(session, keys, phone)
    if resident is None:
        raise ResidentNotFound()
    if resident.revoked_at is not None:
        raise CodeRevoked("this resident is revoked: no paper code is issued to them")
    # One desk at a time per resident (PostgreSQL): two cards issued at once would both stay live.
    session.execute(select(Resident.id).where(Resident.id == resident.id).with_for_update())
    hint = holder_hint(resident, keys)
    iat = int(now.timestamp())
    exp = iat + days * 86400
    credential, cti = credentials.mint(
        signer,
        resident,
        use=PAPER,
        issued_at=iat,
        expires_at=exp,
        issuer=issuer,
        scopes=scopes,
        senior_age=senior_age,
        claims={"hint": hint},
    )
    text = paper_code(credential)
    card = render_card(text, hint=hint, expires_at=exp, serial=cti, issued_at=iat)
    issued_at = datetime.fromtimestamp(iat, UTC)
    replaced = _revoke_live(session, resident.id, issued_at)
    credentials.record(session, resident, cti, use=PAPER, issued_at=iat, expires_at=exp)
    session.commit()
    audit_log.info(
        "paper code %s issued to resident %d, valid %d days%s",
        cti,
        resident.id,
        days,
        f"; revoked the paper code{'s' if len(replaced) > 1 else ''} it replaces: {', '.join(replaced)}"
        if replaced
        else "",
    )
    return PaperCode(
        text=text,
        cti=cti,
        hint=hint,
        issued_at=iat,
        expires_at=exp,
        resident_id=resident.id,
        replaced=replaced,
        card=card,
    )


def live_paper_credentials(session: Session, resident_id: int, now: datetime) -> list[Credential]:
    """The resident's paper credentials neither revoked nor expired at ``now``, the longest-lived last."""
    return list(
        session.scalars(
            select(Credential)
            .where(
                Credential.resident_id == resident_id,
                Credential.use == PAPER,
                Credential.revoked_at.is_(None),
                Credential.expires_at > now,
            )
            .order_by(Credential.expires_at)
        )
    )


def live_paper_until(session: Session, resident_id: int, now: datetime) -> int | None:
    """When the resident's longest-lived live paper code expires (seconds since the epoch); None: no live card."""
    cards = live_paper_credentials(session, resident_id, now)
    if not cards:
        return None
    return int(as_utc(cards[-1].expires_at).timestamp())


def revoke_paper_codes(session: Session, keys: DataKeys, *, phone: str, now: datetime) -> tuple[str, ...]:
    """Revoke the live paper codes of the resident with this phone (a lost card, or one no longer needed); committed.

    Their ``cti``s join the revocation list until a day after they expire.
    ResidentNotFound for an unknown phone; an empty tuple when there was none.
    """
    resident = find_by_phone(session, keys, phone)
    if resident is None:
        raise ResidentNotFound()
    session.execute(select(Resident.id).where(Resident.id == resident.id).with_for_update())
    revoked = _revoke_live(session, resident.id, now)
    session.commit()
    if revoked:
        audit_log.info("paper code%s %s of resident %d revoked", "s" if len(revoked) > 1 else "", ", ".join(revoked),
                       resident.id)
    return revoked


def _revoke_live(session: Session, resident_id: int, at: datetime) -> tuple[str, ...]:
    """Revoke (at ``at``) the resident's live paper credentials; their ctis."""
    ctis = tuple(credential.cti for credential in live_paper_credentials(session, resident_id, at))
    if ctis:
        session.execute(
            update(Credential).where(Credential.cti.in_(ctis)).values(revoked_at=at),
            execution_options={"synchronize_session": False},
        )
    return ctis
