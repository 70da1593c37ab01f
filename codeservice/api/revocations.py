"""``GET /api/v1/revocations``: the revocation list, a compact JWS anyone may fetch."""

from __future__ import annotations

import hashlib

from flask import Response, current_app, request

from verifiers.revocations import REVOCATIONS_MEDIA_TYPE

from .. import db, revocation
from ..revocation import REVOCATIONS_MAX_AGE_SECONDS
from ..context import key_store
from ..extensions import REVOCATION_LIST
from .blueprint import api


@api.get("/revocations")
def revocations() -> Response:
    """The list as the raw JWS (``application/jose``), with a strong ETag; 304 on a matching ``If-None-Match``."""
    store = key_store()
    signer = store.signer()
    revoked = revocation.revoked_residents(db.session())
    key_created = next((k.created_at for k in store.keys() if k.kid == signer.kid), 0)
    issued_at = max(revoked.latest or 0, key_created)
    payload = revocation.signing_input(
        alg=signer.alg, kid=signer.kid, issuer=current_app.config["ISSUER"], subs=revoked.subs, issued_at=issued_at
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
