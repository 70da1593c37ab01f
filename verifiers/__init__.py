"""The offline verifier of resident service codes.

Needs only pyjwt's companion ``cryptography`` at run time: no Flask,
SQLAlchemy, qrcode or Pillow.
"""

from .decision import Decision
from .errors import (
    ConfigurationError,
    InvalidDetail,
    KeySetError,
    Rejection,
    SceneRegistryError,
    StoreError,
    VerifierError,
)
from .keys import KeySet
from .revocations import RevocationList, RevocationListError, verify_revocation_list
from .scenes import DetailField, Outcome, Scene, SceneRegistry, StateWrite, Visit, check_detail, declared_detail
from .sync import SyncReport, VerifierStatus
from .verifier import DEFAULT_ISSUER, OfflineVerifier

__all__ = [
    "DEFAULT_ISSUER",
    "ConfigurationError",
    "Decision",
    "DetailField",
    "InvalidDetail",
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
    "check_detail",
    "declared_detail",
    "verify_revocation_list",
]
