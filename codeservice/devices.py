"""Phones enrolled for device codes and the credentials issued to them (contract sections 4 and 9). No Flask.

A phone enrols a P-256 public key (:func:`enrol`) and gets a credential: a
COSE_Sign1 of CWT claims, signed by the issuer's current key (the same
:class:`~codeservice.keystore.Signer` as the JWS codes, so rotation and the
JWKS hold), whose ``cnf`` names the phone's key. With it the phone makes
device codes (``RSD1:``) itself, offline. It fetches a fresh one now and then
(:func:`refresh`); a resident withdraws a phone (:func:`withdraw`), whose
unexpired credentials then join the revocation list by their ``cti``.

Every credential issued is recorded in ``credentials`` (paper ones too, by
their own module), so that it can be revoked.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from verifiers.cose import cose_key_from_p256
from verifiers.jose import JoseFormatError, b64url_decode, b64url_encode
from verifiers.offline_codes import (
    CLAIM_CNF,
    CNF_COSE_KEY,
    DEVICE,
)
from verifiers.shapes import Member

from . import credentials
from .errors import CodeRevoked, DeviceNotFound, InvalidPublicKey
from .keystore import Signer
from .models import Credential, Device, Resident, as_utc

DEVICE_ID_BYTES = 12
"""A device id is 12 random bytes: 16 base64url characters."""
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{16}\Z")
PUBLIC_KEY_MEMBERS = ("kty", "crv", "x", "y")
"""What is kept of an enrolled JWK; any other public member (WebCrypto's ``ext``, ``key_ops``) is ignored."""
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_COORDINATE_BYTES = 32

ENROLMENT: tuple[Member, ...] = (
    Member(
        "public_key",
        {"type": "object"},
        "The phone's P-256 public key as a JWK (RFC 7517): `kty` `EC`, `crv` `P-256`, `x` and `y` (32 bytes each, "
        "base64url). Other members (WebCrypto's `ext`, `key_ops`) are ignored; a private member (`d`) is refused.",
    ),
)
"""A device's enrolment (``POST /api/v1/devices``)."""


@dataclass(frozen=True)
class CredentialTerms:
    """What a credential says besides the resident and the key, from the app's configuration."""

    issuer: str
    scopes: tuple[str, ...]
    ttl: int
    senior_age: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CredentialTerms:
        """The terms a loaded configuration (``codeservice.config``, with the app's ``ISSUED_SCOPES``) sets."""
        return cls(
            issuer=config["ISSUER"],
            scopes=tuple(config["ISSUED_SCOPES"]),
            ttl=config["DEVICE_CREDENTIAL_TTL"],
            senior_age=config["SENIOR_AGE"],
        )


@dataclass(frozen=True)
class IssuedCredential:
    """A credential as issued: the device it names, its COSE bytes, its id, when it was issued and expires."""

    device_id: str
    credential: bytes
    cti: str
    issued_at: int
    expires_at: int


def public_key_from_jwk(jwk: object) -> ec.EllipticCurvePublicKey:
    """The P-256 public key a JWK holds; :class:`InvalidPublicKey` (400) naming why for anything else.

    Only ``kty``, ``crv``, ``x`` and ``y`` are read; other members are
    ignored, except a private one (``d``), which is refused: the phone's
    private key never leaves it.
    """
    if type(jwk) is not dict:
        raise InvalidPublicKey("public_key must be a JWK: a JSON object")
    leaked = [name for name in _PRIVATE_MEMBERS if name in jwk]
    if leaked:
        raise InvalidPublicKey(f"public_key holds the private member {leaked[0]!r}: send the public key only")
    for name in PUBLIC_KEY_MEMBERS:
        if type(jwk.get(name)) is not str:
            raise InvalidPublicKey(f"public_key must have {name!r} as a string")
    if jwk["kty"] != "EC" or jwk["crv"] != "P-256":
        raise InvalidPublicKey(
            f"public_key is a {jwk['kty']} {jwk['crv']} key; only an EC key on P-256 (ES256) is accepted"
        )
    coordinates = []
    for name in ("x", "y"):
        try:
            value = b64url_decode(jwk[name])
        except JoseFormatError:
            raise InvalidPublicKey(f"public_key's {name!r} is not unpadded base64url") from None
        if len(value) != _COORDINATE_BYTES:
            raise InvalidPublicKey(f"public_key's {name!r} must be 32 bytes, not {len(value)}")
        coordinates.append(int.from_bytes(value, "big"))
    try:
        return ec.EllipticCurvePublicNumbers(coordinates[0], coordinates[1], ec.SECP256R1()).public_key()
    except ValueError:
        raise InvalidPublicKey("public_key's x and y are not a point on P-256") from None


def enrol(
    session: Session,
    signer: Signer,
    resident: Resident,
    jwk: object,
    *,
    now: datetime,
    terms: CredentialTerms,
    limit: int,
) -> IssuedCredential:
    """Enrol a phone's public key and issue its first credential; committed.

    A revoked resident gets :class:`CodeRevoked`, as for a JWS code. Beyond
    ``limit`` active devices, the oldest are withdrawn (their credentials revoked).
    """
    if resident.revoked_at is not None:
        raise CodeRevoked()
    public_key = public_key_from_jwk(jwk)
    assert isinstance(jwk, dict)  # public_key_from_jwk refuses anything else
    # One enrolment at a time per resident (PostgreSQL; SQLite has one writer), so the limit holds.
    session.execute(select(Resident.id).where(Resident.id == resident.id).with_for_update())
    device = Device(
        id=b64url_encode(secrets.token_bytes(DEVICE_ID_BYTES)),
        resident_id=resident.id,
        public_key={name: jwk[name] for name in PUBLIC_KEY_MEMBERS},
        created_at=now.astimezone(UTC),
    )
    active = list(
        session.scalars(
            select(Device)
            .where(Device.resident_id == resident.id, Device.withdrawn_at.is_(None))
            .order_by(Device.created_at, Device.id)
        )
    )
    for oldest in active[: max(0, len(active) + 1 - limit)]:
        _withdraw(session, oldest, now)
    session.add(device)
    session.flush()
    issued = _issue(session, signer, resident, device.id, public_key, now=now, terms=terms)
    session.commit()
    return issued


def refresh(
    session: Session, signer: Signer, resident: Resident, device_id: str, *, now: datetime, terms: CredentialTerms
) -> IssuedCredential:
    """A fresh credential for an active device of ``resident``; committed.

    :class:`DeviceNotFound` (404) for a device that is unknown, withdrawn or
    another resident's; :class:`CodeRevoked` for a revoked resident.
    """
    if resident.revoked_at is not None:
        raise CodeRevoked()
    device = _active_device(session, resident, device_id)
    public_key = public_key_from_jwk(device.public_key)
    issued = _issue(session, signer, resident, device.id, public_key, now=now, terms=terms)
    session.commit()
    return issued


def withdraw(session: Session, resident: Resident, device_id: str, *, now: datetime) -> None:
    """Withdraw an active device of ``resident``, revoking its unexpired credentials; committed.

    :class:`DeviceNotFound` for a device that is unknown, already withdrawn or another resident's.
    """
    _withdraw(session, _active_device(session, resident, device_id), now)
    session.commit()


def devices_of(session: Session, resident: Resident) -> list[Device]:
    """The resident's devices, active or withdrawn, oldest first."""
    return list(
        session.scalars(select(Device).where(Device.resident_id == resident.id).order_by(Device.created_at, Device.id))
    )


def _active_device(session: Session, resident: Resident, device_id: str) -> Device:
    # Only a well-formed id reaches the database (PostgreSQL refuses a NUL in text, say).
    device = session.get(Device, device_id) if _DEVICE_ID.match(device_id) else None
    if device is None or device.resident_id != resident.id or device.withdrawn_at is not None:
        raise DeviceNotFound()
    return device


def _withdraw(session: Session, device: Device, now: datetime) -> None:
    when = now.astimezone(UTC)
    device.withdrawn_at = when
    session.execute(
        update(Credential)
        .where(Credential.device_id == device.id, Credential.revoked_at.is_(None), Credential.expires_at > when)
        .values(revoked_at=when),
        execution_options={"synchronize_session": False},
    )


def _issue(
    session: Session,
    signer: Signer,
    resident: Resident,
    device_id: str,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: datetime,
    terms: CredentialTerms,
) -> IssuedCredential:
    issued_at = int(now.timestamp())
    expires_at = issued_at + terms.ttl
    credential, cti = credentials.mint(
        signer,
        resident,
        use=DEVICE,
        issued_at=issued_at,
        expires_at=expires_at,
        issuer=terms.issuer,
        scopes=terms.scopes,
        senior_age=terms.senior_age,
        claims={CLAIM_CNF: {CNF_COSE_KEY: cose_key_from_p256(public_key)}},
    )
    credentials.record(
        session, resident, cti, use=DEVICE, issued_at=issued_at, expires_at=expires_at, device_id=device_id
    )
    return IssuedCredential(device_id, credential, cti, issued_at, expires_at)


def epoch_seconds(value: datetime) -> int:
    """A stored time in seconds since the epoch."""
    return int(as_utc(value).timestamp())

