"""Signing keys on disk, behind a small ``Signer`` interface.

The issuing code only needs a ``Signer``: a ``kid``, an ``alg``, ``sign()`` and
``public_jwk()``. ``FileSigner`` is the one implementation for now (a PKCS#8
PEM file); an HSM or KMS signer can replace it later without touching issuance.

``KeyStore`` manages a directory of such files plus one ``keyring.json``:

    keys/
      keyring.json       {"version": 1, "keys": [{kid, alg, file, created_at,
                          signing_until, retired}, ...]}, oldest first
      <kid>.pem          one private key per file, mode 0600

The newest key signs; a rotated-out key stays published (in the JWKS) while a
code it signed may still be valid, plus a grace period for verifiers that
cache the key set; a retired key is withdrawn at once.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifiers.contract import (
    DEFAULT_LEEWAY_SECONDS,
    MAX_DEVICE_CREDENTIAL_LIFETIME_SECONDS,
    MAX_LIFETIME_SECONDS,
    MAX_PAPER_CREDENTIAL_LIFETIME_SECONDS,
    SUPPORTED_ALGORITHMS,
)
from verifiers.jose import JoseFormatError, json_object, jwk_from_public_key, kid_for

from .errors import KeyFileError, KeyStoreError
from .extensions import KEYS

if TYPE_CHECKING:
    from flask import Flask

ALGORITHMS = SUPPORTED_ALGORITHMS
# The longest code lifetime the contract allows; a rotated-out key is
# published at least this long after it stopped signing.
MAX_CODE_TTL = MAX_LIFETIME_SECONDS
# The longest anything a key signs may be valid: a paper credential (contract section 9).
MAX_SIGNED_LIFETIME = max(
    MAX_LIFETIME_SECONDS, MAX_DEVICE_CREDENTIAL_LIFETIME_SECONDS, MAX_PAPER_CREDENTIAL_LIFETIME_SECONDS
)
KEYRING_FILE = "keyring.json"
KEYRING_VERSION = 1
INIT_HINT = "run `flask --app codeservice keys init`"
# Scanners refresh their key set in the background; five minutes keeps a
# rotated key reaching them well within its publication grace period.
JWKS_MAX_AGE_SECONDS = 300
JWK_SET_MEDIA_TYPE = "application/jwk-set+json"  # RFC 7517 section 8.5.1

SIGNING, PUBLISHED, EXPIRED, RETIRED = "signing", "published", "expired", "retired"

_KID = re.compile(r"[A-Za-z0-9_-]{11}\Z")
_MAX_KEY_FILE_BYTES = 64 * 1024


@runtime_checkable
class Signer(Protocol):
    """What issuance needs from a signing key, wherever the key lives."""

    kid: str
    alg: str

    def sign(self, signing_input: bytes) -> bytes:
        """The raw JWS signature: 64 bytes for EdDSA, r||s for ES256."""
        ...

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK with ``kid``, ``alg`` and ``use: "sig"``."""
        ...


class FileSigner:
    """A ``Signer`` over an unencrypted PEM private key file (Ed25519 or P-256).

    The file must be a regular file that neither group nor others can access;
    anything wrong with it raises ``KeyFileError`` naming the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._key = _load_private_key(self.path)
        self.alg = "EdDSA" if isinstance(self._key, Ed25519PrivateKey) else "ES256"
        self._jwk: dict[str, str] = jwk_from_public_key(self._key.public_key())
        self.kid = kid_for(self._jwk)

    def sign(self, signing_input: bytes) -> bytes:
        if isinstance(self._key, Ed25519PrivateKey):
            return self._key.sign(signing_input)
        r, s = decode_dss_signature(self._key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def public_jwk(self) -> dict[str, str]:
        return {**self._jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def __repr__(self) -> str:
        return f"FileSigner(kid={self.kid!r}, alg={self.alg!r}, path={str(self.path)!r})"


def _load_private_key(path: Path) -> Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    data = _read_private_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(path, "the key is encrypted; key files must be unencrypted PEM") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(path, "not a valid PEM private key (corrupt or truncated?)") from None
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise KeyFileError(
        path,
        f"holds a {type(key).__name__} key; only Ed25519 (EdDSA) and P-256 (ES256) are supported",
    )


def _read_private_file(path: Path) -> bytes:
    try:
        # O_NONBLOCK: a FIFO planted in place of a key must not hang the service.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise KeyFileError(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(path, "not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                path,
                f"mode {mode:04o} lets group or others access the private key; "
                f"it must be 0600 (chmod 600), and a key others could read should be rotated out",
            )
        chunks, size = [], 0
        while chunk := os.read(fd, 16384):
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_KEY_FILE_BYTES:
                raise KeyFileError(path, "too large to be a key file")
        return b"".join(chunks)
    except OSError as exc:
        raise KeyFileError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


@dataclass(frozen=True)
class KeyInfo:
    """One key of the keyring and its state at a given time (never private material)."""

    kid: str
    alg: str
    file: str
    created_at: int
    signing_until: int | None  # None while it is the signing key
    retired: bool
    state: str  # "signing", "published", "expired" or "retired"
    published_until: int | None  # last second it is in the JWKS; None: signing or retired


class KeyStore:
    """The signing keys in ``directory``: create, rotate, retire, list, publish.

    ``max_code_ttl`` and ``leeway`` bound how long a code signed by a key can
    still be accepted after the key stopped signing; ``publish_grace`` is added
    on top for verifiers that cache the key set.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        publish_grace: int = 3600,
        max_code_ttl: int = MAX_CODE_TTL,
        leeway: int = DEFAULT_LEEWAY_SECONDS,
    ) -> None:
        for name, value in (
            ("publish_grace", publish_grace),
            ("max_code_ttl", max_code_ttl),
            ("leeway", leeway),
        ):
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        self.directory = Path(directory)
        self.keyring_path = self.directory / KEYRING_FILE
        self.publish_grace = publish_grace
        self.max_code_ttl = max_code_ttl
        self.leeway = leeway
        self._signers: dict[str, FileSigner] = {}
        self._keyring_cache: tuple[tuple[int, int, int], list[dict[str, Any]]] | None = None
        self._expiries: tuple[tuple[int, int, int] | None, list[int]] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> KeyStore:
        """The key store a loaded configuration (``codeservice.config``) names."""
        return cls(
            config["KEYS_DIR"],
            publish_grace=config["KEY_PUBLISH_GRACE"],
            leeway=config["LEEWAY"],
            # The contract's longest lifetime of anything a key signs, not CODE_TTL:
            # a paper credential is valid up to 180 days (section 9), and a key
            # stays in the JWKS while any credential it signed may still be valid.
            max_code_ttl=MAX_SIGNED_LIFETIME,
        )

    # -- queries -----------------------------------------------------------

    def keys(self, now: int | None = None) -> list[KeyInfo]:
        """Every key in the keyring, oldest first, with its state at ``now``."""
        now = _now(now)
        return [self._info(entry, now) for entry in self._read_keyring()]

    def signer(self) -> Signer:
        """The current signing key."""
        entry = _signing_entry(self._read_keyring())
        if entry is None:
            raise KeyStoreError(f"no signing key in {self.directory}; {INIT_HINT}")
        return self._signer_for(entry)

    def jwks_version(self, now: int | None = None) -> tuple[Any, ...]:
        """A value that changes whenever :meth:`jwks` may: the keyring's file, and the keys' expiries passed.

        Two equal versions mean the same JWKS, so a caller can keep what it
        made of one (the verify path's key set) and make it again only when
        the version changes: a rotation or retirement (by this process or any
        other: the file is checked at each call) or a published key's expiry
        reached. A ``stat`` and a bisection; nothing is copied.
        """
        now = _now(now)
        stamp, entries = self._keyring()
        if self._expiries is None or self._expiries[0] != stamp:
            ends = sorted({self._info(entry, 0).published_until or 0 for entry in entries})
            self._expiries = (stamp, ends)
        return stamp, bisect.bisect_left(self._expiries[1], now)

    def jwks(self, now: int | None = None) -> dict[str, list[dict[str, str]]]:
        """The public keys of the signing key and every published key, newest first."""
        now = _now(now)
        entries = self._read_keyring()
        live = [e for e in reversed(entries) if self._info(e, now).state in (SIGNING, PUBLISHED)]
        return {"keys": [self._signer_for(e).public_jwk() for e in live]}

    # -- changes -----------------------------------------------------------

    def init(self, alg: str = "EdDSA", now: int | None = None) -> KeyInfo | None:
        """Create the first signing key; do nothing (return None) if there is a key."""
        now = _now(now)
        _check_alg(alg)
        with self._locked(create=True):
            entries = self._read_keyring()
            if entries:
                return None
            entry = self._new_key(alg, now)
            self._write_keyring([entry])
        return self._info(entry, now)

    def rotate(self, alg: str | None = None, now: int | None = None) -> KeyInfo:
        """Create a new signing key (the current one's alg unless given).

        The previous signing key stops signing at ``now`` and stays published
        while codes it signed may still be valid (see ``KeyInfo.published_until``).
        """
        now = _now(now)
        if alg is not None:
            _check_alg(alg)
        with self._locked():
            entries = self._read_keyring()
            current = _signing_entry(entries)
            if current is None:
                raise KeyStoreError(f"no signing key in {self.directory} to rotate; {INIT_HINT}")
            entry = self._new_key(alg or current["alg"], now)
            current["signing_until"] = now
            entries.append(entry)
            self._write_keyring(entries)
        return self._info(entry, now)

    def retire(self, kid: str, now: int | None = None) -> KeyInfo:
        """Withdraw a key from the JWKS at once (e.g. after a compromise).

        Codes it signed stop verifying as soon as verifiers refresh their key
        set. The signing key cannot be retired: rotate first.
        """
        now = _now(now)
        with self._locked():
            entries = self._read_keyring()
            entry = next((e for e in entries if e["kid"] == kid), None)
            if entry is None:
                raise KeyStoreError(f"no key with kid {kid!r} in {self.directory}")
            if entry["signing_until"] is None:
                raise KeyStoreError(
                    f"key {kid} is the current signing key; rotate first "
                    f"(`flask --app codeservice keys rotate`), then retire it"
                )
            if not entry["retired"]:
                entry["retired"] = True
                self._write_keyring(entries)
        self._signers.pop(kid, None)
        return self._info(entry, now)

    # -- internals ---------------------------------------------------------

    def _info(self, entry: Mapping[str, Any], now: int) -> KeyInfo:
        until = entry["signing_until"]
        published_until = None
        if entry["retired"]:
            state = RETIRED
        elif until is None:
            state = SIGNING
        else:
            published_until = until + self.max_code_ttl + self.leeway + self.publish_grace
            state = PUBLISHED if now <= published_until else EXPIRED
        return KeyInfo(
            kid=entry["kid"],
            alg=entry["alg"],
            file=entry["file"],
            created_at=entry["created_at"],
            signing_until=until,
            retired=entry["retired"],
            state=state,
            published_until=published_until,
        )

    def _signer_for(self, entry: Mapping[str, Any]) -> FileSigner:
        kid = entry["kid"]
        cached = self._signers.get(kid)
        if cached is not None:
            return cached
        path = self.directory / entry["file"]
        signer = FileSigner(path)
        if signer.kid != kid or signer.alg != entry["alg"]:
            raise KeyFileError(
                path,
                f"holds key {signer.kid} ({signer.alg}) but {KEYRING_FILE} lists "
                f"{kid} ({entry['alg']}) for it",
            )
        self._signers[kid] = signer
        return signer

    def _new_key(self, alg: str, now: int) -> dict[str, Any]:
        private: Ed25519PrivateKey | ec.EllipticCurvePrivateKey
        if alg == "EdDSA":
            private = Ed25519PrivateKey.generate()
        else:
            private = ec.generate_private_key(ec.SECP256R1())
        kid = kid_for(jwk_from_public_key(private.public_key()))
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        name = f"{kid}.pem"
        path = self.directory / name
        try:
            # Created 0600 in the one call, never briefly readable by others.
            _write_new_file(path, pem, 0o600)
        except OSError as exc:
            raise KeyFileError(path, f"cannot create: {exc.strerror or exc}") from None
        return {
            "kid": kid,
            "alg": alg,
            "file": name,
            "created_at": now,
            "signing_until": None,
            "retired": False,
        }

    @contextlib.contextmanager
    def _locked(self, *, create: bool = False) -> Iterator[None]:
        """Serialise changes (two operators rotating at once) with a lock on the directory.

        Only ``create`` makes a missing directory (0700): rotating or retiring
        in a directory that does not exist is a mistaken path, reported as such.
        """
        if not create and not self.directory.is_dir():
            yield
            return
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            problem = f"cannot use the keys directory: {exc.strerror or exc}"
            raise KeyFileError(self.directory, problem) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read_keyring(self) -> list[dict[str, Any]]:
        """The keyring's entries (a fresh copy), validated; [] if there is no keyring yet."""
        return [dict(entry) for entry in self._keyring()[1]]

    def _keyring(self) -> tuple[tuple[int, int, int] | None, list[dict[str, Any]]]:
        """The keyring file's stamp (None: no keyring) and its entries, validated: the cached list, not a copy."""
        path = self.keyring_path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None, []
        except OSError as exc:
            raise KeyFileError(path, f"cannot read: {exc.strerror or exc}") from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._keyring_cache is None or self._keyring_cache[0] != stamp:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise KeyFileError(path, f"cannot read: {exc.strerror or exc}") from None
            self._keyring_cache = (stamp, _parse_keyring(path, data))
        return self._keyring_cache

    def _write_keyring(self, entries: list[dict[str, Any]]) -> None:
        body = {"version": KEYRING_VERSION, "keys": entries}
        data = (json.dumps(body, indent=2) + "\n").encode("utf-8")
        tmp = self.directory / f".{KEYRING_FILE}.{secrets.token_hex(8)}.tmp"
        try:
            _write_new_file(tmp, data, 0o600)
            os.replace(tmp, self.keyring_path)
            _fsync_directory(self.directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise KeyFileError(self.keyring_path, f"cannot write: {exc.strerror or exc}") from None
        self._keyring_cache = None


def init_app(app: Flask) -> None:
    """Open the key store the app's configuration names, for ``context.key_store()``."""
    app.extensions[KEYS] = KeyStore.from_config(app.config)


def _parse_keyring(path: Path, data: bytes) -> list[dict[str, Any]]:
    try:
        body = json_object(data)
    except JoseFormatError as exc:
        raise KeyFileError(path, f"corrupt: {exc}") from None
    if body.get("version") != KEYRING_VERSION:
        raise KeyFileError(path, f"corrupt or unsupported: 'version' must be {KEYRING_VERSION}")
    raw = body.get("keys")
    if not isinstance(raw, list):
        raise KeyFileError(path, "corrupt: 'keys' must be a list")
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        problem = _entry_problem(item)
        if problem is None and item["kid"] in seen:
            problem = f"kid {item['kid']} appears twice"
        if problem is not None:
            raise KeyFileError(path, f"corrupt: key entry {i}: {problem}")
        seen.add(item["kid"])
        entries.append(item)
    signing = [e for e in entries if e["signing_until"] is None]
    if entries and len(signing) != 1:
        raise KeyFileError(
            path, f"corrupt: {len(signing)} signing keys (entries without signing_until); expected 1"
        )
    return entries


def _entry_problem(item: Any) -> str | None:
    if type(item) is not dict:
        return "not an object"
    expected = {"kid", "alg", "file", "created_at", "signing_until", "retired"}
    if set(item) != expected:
        return f"members must be exactly {sorted(expected)}"
    if not isinstance(item["kid"], str) or not _KID.match(item["kid"]):
        return "'kid' must be 11 base64url characters"
    if item["alg"] not in ALGORITHMS:
        return f"'alg' must be one of {', '.join(ALGORITHMS)}"
    name = item["file"]
    if (
        not isinstance(name, str)
        or name in ("", ".", "..", KEYRING_FILE)
        or "/" in name
        or "\\" in name
        or "\0" in name
    ):
        return "'file' must be a plain file name inside the keys directory"
    if type(item["created_at"]) is not int:
        return "'created_at' must be an integer"
    if item["signing_until"] is not None and type(item["signing_until"]) is not int:
        return "'signing_until' must be an integer or null"
    if type(item["retired"]) is not bool:
        return "'retired' must be true or false"
    if item["retired"] and item["signing_until"] is None:
        return "a retired key must have 'signing_until'"
    return None


def _signing_entry(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in entries if e["signing_until"] is None), None)


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (it must not exist) with ``mode`` from the start, and sync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_alg(alg: str) -> None:
    if alg not in ALGORITHMS:
        raise KeyStoreError(f"unsupported signing algorithm {alg!r}; use EdDSA or ES256")


def _now(now: int | None) -> int:
    return int(time.time()) if now is None else now
