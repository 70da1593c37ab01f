"""The service's one exception tree.

Each error carries a stable machine-readable ``code`` and the HTTP ``status``
it maps to; the API's single error handler renders
``{"error": {"code": ..., "message": ...}}`` from them.
"""

from __future__ import annotations


class CodeserviceError(Exception):
    code = "internal_error"
    status = 500
    default_message = "internal error"
    retry_after = 0
    """Seconds after which a retry can succeed, sent as ``Retry-After``; 0: not sent."""

    def __init__(self, message: str | None = None, *, retry_after: int | None = None) -> None:
        self.message = message or self.default_message
        if retry_after is not None:
            self.retry_after = retry_after
        super().__init__(self.message)


class KeyStoreError(CodeserviceError):
    """The signing keys cannot be used: missing, corrupt, unreadable, exposed."""

    code = "key_store_error"
    default_message = "the signing keys cannot be used"


class KeyFileError(KeyStoreError):
    """One key file is bad; the message names the file."""

    code = "key_file_error"

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {problem}")


class ConfigError(CodeserviceError):
    code = "config_error"
    default_message = "the service is misconfigured"


# Client errors: the API renders each as its status and the one error shape.


class ClientError(CodeserviceError):
    status = 400
    code = "bad_request"
    default_message = "the request cannot be processed"


class InvalidJson(ClientError):
    code = "invalid_json"
    default_message = "the body is not a JSON object"


class MissingField(ClientError):
    code = "missing_field"


class WrongFieldType(ClientError):
    code = "wrong_type"


class NotAuthenticated(ClientError):
    status = 401
    code = "not_authenticated"
    default_message = "log in first"


class BadCredentials(ClientError):
    status = 401
    code = "bad_credentials"
    default_message = "the phone number or the password is wrong"


class Forbidden(ClientError):
    status = 403
    code = "forbidden"
    default_message = "not allowed"


class CodeRevoked(Forbidden):
    code = "code_revoked"
    default_message = "codes are no longer issued for this resident"


class NotFound(ClientError):
    status = 404
    code = "not_found"
    default_message = "no such resource"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"
    default_message = "this method is not allowed here"


class Conflict(ClientError):
    status = 409
    code = "conflict"


class IdentityTaken(Conflict):
    code = "identity_taken"
    default_message = "an account already exists for this identity document"


class PhoneTaken(Conflict):
    code = "phone_taken"
    default_message = "an account already exists for this phone number"


class BodyTooLarge(ClientError):
    status = 413
    code = "body_too_large"
    default_message = "the request body is too large"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"
    default_message = "send Content-Type: application/json"


class InvalidField(ClientError):
    """A field of the right type whose value will not do (a wrong check digit, say)."""

    status = 422
    code = "invalid_field"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        if code:
            self.code = code


class TooManyAttempts(ClientError):
    status = 429
    code = "too_many_attempts"
    default_message = "too many failed attempts; try again later"


class RateLimited(ClientError):
    """Over an operation's rate limit (:mod:`codeservice.protection`)."""

    status = 429
    code = "rate_limited"
    default_message = "too many requests; try again later"


# Usage records (:mod:`codeservice.usage`).


class BatchTooLarge(ClientError):
    code = "batch_too_large"
    default_message = "a batch holds too many records; send the rest in another"


class InvalidUsageRecord(ClientError):
    """One record of a batch will not do; ``field`` names it: ``records[3].decided_at``."""

    code = "invalid_usage_record"

    def __init__(self, index: int, name: str | None, problem: str) -> None:
        where = f"records[{index}]" if name is None else f"records[{index}].{name}"
        super().__init__(f"{where}: {problem}; nothing was stored")
        self.field = where
        self.index = index


class InvalidLimit(ClientError):
    code = "invalid_limit"
    default_message = "limit must be an integer within the page size allowed"


class InvalidCursor(ClientError):
    code = "invalid_cursor"
    default_message = "before must be a cursor this service sent as next"


class ResidentNotFound(NotFound):
    """No resident has the phone number an administrator gave."""

    code = "resident_not_found"
    default_message = "no resident has this phone number"


class IdentityNotFound(NotFound):
    """No resident has the identity document an administrator gave."""

    code = "identity_not_found"
    default_message = "no resident has this identity document"


# Devices and their credentials (:mod:`codeservice.devices`).


class InvalidPublicKey(ClientError):
    """An enrolment's ``public_key`` is not a P-256 public JWK; the message names why."""

    code = "invalid_public_key"
    default_message = "public_key must be a P-256 public key as a JWK"


class DeviceNotFound(NotFound):
    """No active device of this resident has the id: unknown, withdrawn or another resident's."""

    code = "device_not_found"
    default_message = "no active device of yours has this id"


class ScannerKeyInvalid(ClientError):
    status = 401
    code = "invalid_scanner_key"
    default_message = "the scanner key is missing, unknown or revoked"


class ScannerCsrfFailed(Forbidden):
    """A ``/scanner`` call without its scanner session's CSRF token."""

    code = "csrf_failed"
    default_message = "send the scanner session's CSRF token in the X-CSRF-Token header"


class SceneNotPermitted(Forbidden):
    code = "scene_not_permitted"
    default_message = "this scanner's key does not name this scene"


class ServiceUnavailable(CodeserviceError):
    """A dependency is down for the moment; the client should retry (503 with Retry-After)."""

    status = 503
    code = "service_unavailable"
    default_message = "the service is temporarily unavailable; try again shortly"
    retry_after = 5


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached (restarting, connection lost); the request may be retried."""

    code = "database_unavailable"
    default_message = "the database is temporarily unavailable; try again shortly"


# Operators and their console (:mod:`codeservice.operators`, :mod:`codeservice.usage_report`).


class OperatorNotFound(NotFound):
    code = "operator_not_found"
    default_message = "no operator has this username"


class OperatorExists(Conflict):
    code = "operator_exists"
    default_message = "an operator with this username exists already"


class InvalidDay(ClientError):
    """A day that is not ``YYYY-MM-DD`` (the console's ``day``, ``usage report --day``)."""

    code = "invalid_day"
    default_message = "the day must be a date written YYYY-MM-DD"


class VenueNotVisible(NotFound):
    """A venue the operator may not see (or no such venue): the same answer for both."""

    code = "venue_not_found"
    default_message = "no such venue among this operator's"
