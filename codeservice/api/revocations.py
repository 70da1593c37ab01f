"""``GET /api/v1/revocations``: the revocation list, a compact JWS anyone may fetch."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, request

from verifiers.contract import TOKEN_TYPE
from verifiers.revocations import (
    CREDENTIALS_CLAIM,
    REVOCATIONS_MEDIA_TYPE,
    REVOCATIONS_TYPE,
    REVOKED_CLAIM,
)

from .. import db, revocation
from ..context import key_store
from ..extensions import REVOCATION_LIST
from ..openapi.operations import conditional_get, described_by
from ..revocation import REVOCATIONS_MAX_AGE_SECONDS
from .blueprint import api


def _revocations_operation(_app: Flask) -> dict[str, Any]:
    return conditional_get(
        "getRevocations",
        "The revoked residents' code ids and credentials' ids, signed",
        "keys",
        what=(
            f"A compact JWS (header `typ` `{REVOCATIONS_TYPE}`, never `{TOKEN_TYPE}`; "
            "signed by the issuer's current key, "
            f"verified with the JWKS) whose claims are `iss`, `iat`, `{REVOKED_CLAIM}`: the revoked `sub`s, "
            "sorted, and "
            f"`{CREDENTIALS_CLAIM}`: the revoked device and paper credentials' `cti`s in base64url, sorted, each until "
            "a day after it expires."
        ),
        content={
            REVOCATIONS_MEDIA_TYPE: {"schema": {"type": "string", "pattern": r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){2}$"}}
        },
        max_age=REVOCATIONS_MAX_AGE_SECONDS,
        description=(
            "Scanners refuse the codes of these residents, and the device and paper codes of these credentials, "
            "offline (decision `revoked`)."
        ),
        database=True,
    )


@api.get("/revocations")
@described_by(_revocations_operation)
def revocations() -> Response:
    """The list as the raw JWS (``application/jose``), with a strong ETag; 304 on a matching ``If-None-Match``."""
    store = key_store()
    signer = store.signer()
    session = db.session()
    revoked = revocation.revoked_residents(session)
    credentials = revocation.revoked_credentials(session, datetime.now(UTC))
    key_created = next((k.created_at for k in store.keys() if k.kid == signer.kid), 0)
    issued_at = max(revoked.latest or 0, credentials.latest or 0, key_created)
    payload = revocation.signing_input(
        alg=signer.alg,
        kid=signer.kid,
        issuer=current_app.config["ISSUER"],
        subs=revoked.ids,
        issued_at=issued_at,
        credentials=credentials.ids,
    )
    # One signature per list: the same bytes (and ETag) until the list or the key changes,
    # even for ES256, whose signatures are randomised.
    cached = current_app.extensions.get(REVOCATION_LIST)
    if cached is not None and cached[0] == payload:
        jws = cached[1]
    else:
        jws = revocation.sign(signer, payload)
        current_app.extensions[REVOCATION_LIST] = (payload, jws)
    body = jws.encode("ascii")
    etag = hashlib.sha256(body).hexdigest()[:32]
    headers = {"Cache-Control": f"public, max-age={REVOCATIONS_MAX_AGE_SECONDS}", "ETag": f'"{etag}"'}
    if request.if_none_match.contains_weak(etag):
        return Response(status=304, headers=headers)
    return Response(body, mimetype=REVOCATIONS_MEDIA_TYPE, headers=headers)
