"""The contract's constants (sections 1 and 2), declared once.

The service issues codes by them and every verifier checks codes by them;
``codeservice`` imports them from here.
"""

from __future__ import annotations

TOKEN_TYPE = "rsc+jwt"
"""The JWS header's ``typ`` of a resident code."""
DEFAULT_ISSUER = "urn:codeservice:dev"
SUPPORTED_ALGORITHMS = ("EdDSA", "ES256")
CATEGORIES = ("senior", "student", "disabled", "child")
"""The concession categories a code's ``cat`` may name."""
MAX_LIFETIME_SECONDS = 300
"""The longest ``exp - iat`` a verifier accepts, and so the longest code lifetime the service may issue."""
DEFAULT_LEEWAY_SECONDS = 10
"""Clock skew allowed on ``exp`` and ``iat``."""
MAX_TOKEN_BYTES = 4096
FORMS = ("online", "device", "paper")
"""The forms of a code (section 9): a JWS, a device code (``RSD1:``), a paper code (``RSP1:``)."""

# Section 9: device codes and paper codes.
DEVICE_CODE_PREFIX = "RSD1:"
PAPER_CODE_PREFIX = "RSP1:"
MAX_DEVICE_CREDENTIAL_LIFETIME_SECONDS = 72 * 3600
"""The longest ``exp - iat`` of a device credential a verifier accepts."""
MAX_PAPER_CREDENTIAL_LIFETIME_SECONDS = 180 * 86400
"""The longest ``exp - iat`` of a paper credential a verifier accepts."""
DEVICE_CODE_VALIDITY_SECONDS = 60
"""A device code is valid this long from its ``t``, whatever the code lifetime is."""
