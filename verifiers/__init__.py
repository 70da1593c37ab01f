"""The offline verifier of resident service codes.

Needs only pyjwt's companion ``cryptography`` at run time: no Flask,
SQLAlchemy, qrcode or Pillow.
"""

from .contract import DEFAULT_ISSUER
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
from .status import Freshness, SyncReport, VerifierStatus
from .store import DecisionStore, Outbox, Store, Transaction
from .sync import SyncableVerifier
from .verifier import OfflineVerifier

__all__ = [
    "DEFAULT_ISSUER",
    "ConfigurationError",
    "Decision",
    "DecisionStore",
    "Freshness",
    "KeySet",
    "KeySetError",
    "OfflineVerifier",
    "Outbox",
    "Outcome",
    "Rejection",
    "RevocationList",
    "RevocationListError",
    "Scene",
    "SceneRegistry",
    "SceneRegistryError",
    "StateWrite",
    "Store",
    "StoreError",
    "SyncReport",
    "SyncableVerifier",
    "Transaction",
    "VerifierError",
    "VerifierStatus",
    "Visit",
    "verify_revocation_list",
]
