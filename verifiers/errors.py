"""One exception tree for the offline verifier.

Every rejection of a code is a :class:`Rejection` subclass carrying the stable
decision code of the contract (section 2 and 3). :meth:`OfflineVerifier.verify`
turns them into a :class:`~verifiers.decision.Decision`; they never escape to
the caller. Problems with the verifier's own set-up (a key set that cannot be
read, a scene registered twice, a store that cannot be opened) are
:class:`ConfigurationError` and do escape: they are the integrator's to fix.
"""

from __future__ import annotations

from typing import Any


class VerifierError(Exception):
    """Root of every error raised by the ``verifiers`` package."""

    code = "error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message

    default_message = "verification failed"


class Rejection(VerifierError):
    """A code or a presentation that is not accepted; ``code`` is the decision code.

    ``detail`` is what a scene logs about a refused presentation (the station,
    the department); ``verified`` is the code once its signature and claim
    types were found good (None before: nothing unverified is reported).
    """

    code = "rejected"
    verified: object = None

    def __init__(self, message: str | None = None, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


# Rules 1-8 of contract section 2 (and section 9's), in order.


class Malformed(Rejection):
    code = "malformed"
    default_message = "the code is not a well-formed resident code"


class WrongType(Rejection):
    code = "wrong_type"
    default_message = "the token is not a resident service code (typ)"


class AlgNotAllowed(Rejection):
    code = "alg_not_allowed"
    default_message = "the signature algorithm is not allowed for this key"


class UnknownKey(Rejection):
    code = "unknown_key"
    default_message = "the code was signed by a key this verifier does not know"


class BadSignature(Rejection):
    code = "bad_signature"
    default_message = "the signature is not valid"


class IssuerMismatch(Rejection):
    code = "issuer_mismatch"
    default_message = "the code was issued by another issuer"


class Expired(Rejection):
    code = "expired"
    default_message = "the code has expired; refresh it"


class NotYetValid(Rejection):
    code = "not_yet_valid"
    default_message = "the code is not valid yet; check the scanner's clock"


class SceneNotAllowed(Rejection):
    code = "scene_not_allowed"
    default_message = "the code may not be used at this scene"


class AttendantRequired(Rejection):
    code = "attendant_required"
    default_message = "a paper code is accepted only at a staffed scanner"


class Revoked(Rejection):
    code = "revoked"
    default_message = "the resident's code has been revoked"


class Replayed(Rejection):
    code = "replayed"
    default_message = "this code was already used; show a fresh one"


# Checked before the code itself (contract section 3).


class UnknownScene(Rejection):
    code = "unknown_scene"
    default_message = "no installed scene has this name"


class BadContext(Rejection):
    code = "bad_context"
    default_message = "the scanner's context is missing or malformed"


class SceneRejection(Rejection):
    """A scene's own rule failed; scenes subclass this with their codes."""


# Set-up errors: raised to the integrator, never turned into a decision.


class InvalidDetail(VerifierError):
    """A usage detail holds what its scene does not declare (:func:`verifiers.scenes.check_detail`).

    ``field`` names the member; ``problem`` says what is wrong with it.
    """

    code = "invalid_detail"
    default_message = "the usage detail holds what its scene does not declare"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ConfigurationError(VerifierError):
    code = "configuration_error"
    default_message = "the verifier is not configured correctly"


class KeySetError(ConfigurationError):
    code = "bad_key_set"
    default_message = "the key set cannot be used"


class SceneRegistryError(ConfigurationError):
    code = "bad_scene_registry"
    default_message = "the scene registry is inconsistent"


class StoreError(ConfigurationError):
    code = "bad_store"
    default_message = "the verifier's local store cannot be used"


RULE_REJECTIONS: tuple[type[Rejection], ...] = (
    Malformed,
    WrongType,
    AlgNotAllowed,
    UnknownKey,
    BadSignature,
    IssuerMismatch,
    Expired,
    NotYetValid,
    SceneNotAllowed,
    AttendantRequired,
    Revoked,
    Replayed,
    UnknownScene,
    BadContext,
)
"""The rules' own rejections (contract sections 2 and 3), in the contract's order; scenes declare theirs."""
