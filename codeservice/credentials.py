"""Section 9's credentials as the service issues them, device and paper alike. No Flask here.

Every credential carries the same claims (``iss``, ``sub``, ``iat``, ``exp``,
a random ``cti``, ``use``, ``scp`` and the resident's ``cat``), is signed by
the service's :class:`~codeservice.keystore.Signer` (so key rotation and the
JWKS hold as they do for the JWS codes) and is recorded in the
``credentials`` table, where its revocation is kept. :mod:`codeservice.devices`
adds the device's key (``cnf``), :mod:`codeservice.paper` the holder hint.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from verifiers.jose import b64url_decode, b64url_encode
from verifiers.offline_codes import CLAIM_CTI, CLAIM_EXP, CLAIM_IAT, CLAIM_ISS, CLAIM_SUB, CTI_BYTES, mint_credential

from .keystore import Signer
from .models import Credential, Resident
from .residents import code_category


def mint(
    signer: Signer,
    resident: Resident,
    *,
    use: str,
    issued_at: int,
    expires_at: int,
    issuer: str,
    scopes: Iterable[str],
    senior_age: int,
    claims: Mapping[Any, Any],
) -> tuple[bytes, str]:
    """A new credential of ``use`` for ``resident``, with its form's own ``claims``: its bytes and cti (base64url)."""
    cti = secrets.token_bytes(CTI_BYTES)
    signed: dict[Any, Any] = {
        CLAIM_ISS: issuer,
        CLAIM_SUB: resident.code_id,
        CLAIM_IAT: issued_at,
        CLAIM_EXP: expires_at,
        CLAIM_CTI: cti,
        "use": use,
        "scp": list(scopes),
        **claims,
    }
    category = code_category(resident, issued_at, senior_age=senior_age)
    if category is not None:
        signed["cat"] = category
    credential = mint_credential(signed, alg=signer.alg, kid=b64url_decode(signer.kid), sign=signer.sign)
    return credential, b64url_encode(cti)


def record(
    session: Session,
    resident: Resident,
    cti: str,
    *,
    use: str,
    issued_at: int,
    expires_at: int,
    device_id: str | None = None,
) -> None:
    """Keep an issued credential (in ``session``, not committed): its revocation is recorded there."""
    session.add(
        Credential(
            cti=cti,
            resident_id=resident.id,
            device_id=device_id,
            use=use,
            issued_at=datetime.fromtimestamp(issued_at, UTC),
            expires_at=datetime.fromtimestamp(expires_at, UTC),
        )
    )
