"""Encryption at rest for personal data, and keyed hashes to look it up.

One random 32-byte master secret, ``data.key`` in the keys directory (mode
0600, created by ``flask --app codeservice keys init``), yields through HKDF
the AES-256-GCM key for ID numbers and phones, the HMAC key for their lookup
hashes, and (unless ``CODESERVICE_SECRET_KEY`` is set) the session secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import KeyFileError

DATA_KEY_FILE = "data.key"
MASTER_BYTES = 32
NONCE_BYTES = 12


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"codeservice " + purpose).derive(master)


class DataKeys:
    def __init__(self, master: bytes) -> None:
        if len(master) != MASTER_BYTES:
            raise ValueError(f"the data key must be {MASTER_BYTES} bytes")
        self._aead = AESGCM(_derive(master, b"pii-encryption"))
        self._mac_key = _derive(master, b"pii-lookup")
        self.session_secret = _derive(master, b"session-secret").hex()

    @classmethod
    def load(cls, keys_dir: str | os.PathLike[str]) -> DataKeys:
        path = Path(keys_dir) / DATA_KEY_FILE
        try:
            mode = path.stat().st_mode
            master = path.read_bytes()
        except FileNotFoundError:
            raise KeyFileError(path, "missing; run `flask --app codeservice keys init`") from None
        except OSError as exc:
            raise KeyFileError(path, f"cannot be read: {exc.strerror or exc}") from None
        if mode & 0o077:
            raise KeyFileError(path, "is readable by group or others; chmod 600 it")
        if len(master) != MASTER_BYTES:
            raise KeyFileError(path, f"is corrupt: {len(master)} bytes, expected {MASTER_BYTES}")
        return cls(master)

    @staticmethod
    def create(keys_dir: str | os.PathLike[str]) -> bool:
        """Create ``data.key`` if there is none; True when it was created."""
        directory = Path(keys_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(directory / DATA_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(MASTER_BYTES))
            file.flush()
            os.fsync(file.fileno())
        return True

    def encrypt(self, plaintext: str, *, purpose: str) -> bytes:
        """nonce || AES-GCM ciphertext; ``purpose`` is bound as associated data."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), purpose.encode("ascii"))

    def decrypt(self, blob: bytes, *, purpose: str) -> str:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], purpose.encode("ascii")).decode("utf-8")
        except InvalidTag:
            raise ValueError("the stored value does not decrypt with this data key") from None

    def lookup_hash(self, value: str, *, purpose: str) -> str:
        """HMAC-SHA256 of a normalized value: equal inputs, equal hashes; useless without the key."""
        message = purpose.encode("ascii") + b"\x00" + value.encode("utf-8")
        return hmac.new(self._mac_key, message, hashlib.sha256).hexdigest()
