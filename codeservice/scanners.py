"""Scanner keys: one venue, one device, the scenes it may verify. No Flask."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import InvalidField, NotFound, ScannerKeyInvalid
from .models import Scanner
from .scan_cache import ScanDirectory
from .scan_store import DirectoryRows, ScanConnection, ScannerRow

KEY_PREFIX = "csk_"  # recognisable in logs and secret scanners; never logged by us
MAX_NAME = 100


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bearer_key(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header; None for any other header or none."""
    scheme, _, key = (authorization or "").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def add_scanner(
    session: Session,
    *,
    venue_id: str,
    device_id: str,
    scenes: Iterable[str],
    installed: Iterable[str],
    now: datetime,
    attended: bool = False,
) -> tuple[Scanner, str]:
    """Create a scanner and return it with its key: the only time the key exists in the clear.

    ``attended``: a staffed scanner, where someone checks the ID card; only these accept paper codes.
    """
    scene_list = sorted({scene.strip() for scene in scenes if scene.strip()})
    unknown = sorted(set(scene_list) - set(installed))
    for field, value in (("venue", venue_id), ("device", device_id)):
        if not value.strip() or len(value) > MAX_NAME:
            raise InvalidField(field, f"--{field} must be 1 to {MAX_NAME} characters")
    if not scene_list or unknown:
        raise InvalidField("scenes", f"--scenes must name installed scenes ({', '.join(sorted(installed))})")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    scanner = Scanner(
        venue_id=venue_id.strip(),
        device_id=device_id.strip(),
        scenes=scene_list,
        key_hash=hash_key(key),
        key_hint=key[: len(KEY_PREFIX) + 4],
        created_at=now,
        attended=attended,
    )
    session.add(scanner)
    session.commit()
    return scanner, key


def list_scanners(session: Session) -> list[Scanner]:
    return list(session.scalars(select(Scanner).order_by(Scanner.id)))


def revoke_scanner(session: Session, scanner_id: int, *, now: datetime) -> Scanner:
    scanner = session.get(Scanner, scanner_id)
    if scanner is None:
        raise NotFound(f"no scanner with id {scanner_id}")
    if scanner.revoked_at is None:
        scanner.revoked_at = now
        session.commit()
    return scanner


def authenticate(
    directory: ScanDirectory, rows: DirectoryRows, connection: ScanConnection, authorization: str | None
) -> ScannerRow:
    """The scanner named by ``Authorization: Bearer <key>`` (from the process's copy, ``rows``); 401 otherwise."""
    key = bearer_key(authorization)
    if key is None:
        raise ScannerKeyInvalid("send the scanner's key as Authorization: Bearer <key>")
    return scanner_by_hash(directory, rows, connection, hash_key(key))


def scanner_by_hash(
    directory: ScanDirectory, rows: DirectoryRows, connection: ScanConnection, key_hash: str
) -> ScannerRow:
    """The live scanner whose key hashes to ``key_hash`` (a key, or a scanner session), from the copy; 401 otherwise."""
    scanner = directory.scanner(connection, rows, key_hash)
    # The lookup is by hash; compare again in constant time all the same.
    if scanner is None or not hmac.compare_digest(scanner.key_hash, key_hash):
        raise ScannerKeyInvalid()
    return scanner
