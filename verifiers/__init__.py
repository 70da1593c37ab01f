"""The offline verifier of resident service codes.

Needs only pyjwt's companion ``cryptography`` at run time: no Flask,
SQLAlchemy, qrcode or Pillow.
"""

from .contract import DEFAULT_ISSUER
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
from .scenes import (
    DetailField,
    Outcome,
    Scene,
    SceneRegistry,
    StateWrite,
    Visit,
    check_detail,
    declared_detail,
)
from .status import Freshness, SyncReport, VerifierStatus
from .store import DecisionStore, Outbox, ReadAhead, Store, Transaction
from .sync import SyncableVerifier
from .verifier import OfflineVerifier

__all__ = [
    "DEFAULT_ISSUER",
    "ConfigurationError",
    "Decision",
    "DecisionStore",
    "DetailField",
    "Freshness",
    "InvalidDetail",
    "KeySet",
    "KeySetError",
    "OfflineVerifier",
    "Outbox",
    "Outcome",
    "ReadAhead",
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
    "check_detail",
    "declared_detail",
    "verify_revocation_list",
]
