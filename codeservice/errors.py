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

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
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
