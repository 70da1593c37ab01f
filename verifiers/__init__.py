"""The offline verifier of resident service codes.

Needs only pyjwt's companion ``cryptography`` at run time: no Flask,
SQLAlchemy, qrcode or Pillow.
"""

from .decision import Decision
from .errors import (
    ConfigurationError,
    KeySetError,
    Rejection,
    SceneRegistryError,
    StoreError,
    VerifierError,
)
from .keys import KeySet
from .revocations import RevocationList, RevocationListError, verify_revocation_list
from .scenes import Outcome, Scene, SceneRegistry, StateWrite, Visit
from .sync import SyncReport, VerifierStatus
from .contract import DEFAULT_ISSUER
from .verifier import OfflineVerifier

__all__ = [
    "DEFAULT_ISSUER",
    "ConfigurationError",
    "Decision",
    "KeySet",
    "KeySetError",
    "OfflineVerifier",
    "Outcome",
    "Rejection",
    "RevocationList",
    "RevocationListError",
    "Scene",
    "SceneRegistry",
    "SceneRegistryError",
    "StateWrite",
    "StoreError",
    "SyncReport",
    "VerifierError",
    "VerifierStatus",
    "Visit",
    "verify_revocation_list",
]
