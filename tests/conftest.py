"""Fixtures shared by both halves of the suite: keys, a token factory, an offline verifier, a plug-in.

The service's fixtures (databases, the app, clients) are in tests/service/conftest.py;
plain helpers are in tests/helpers.py.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    DROP,
    ISSUER,
    NOW,
    PLUGIN_EXAMPLE,
    PLUGIN_MODULES,
    TestKey,
    TokenFactory,
    b64json,
    default_claims,
    make_test_key,
    write_distribution,
)

from verifiers import KeySet, OfflineVerifier
from verifiers.jose import b64url_encode
from verifiers.scenes import ENTRY_POINT_GROUP


@pytest.fixture(scope="session")
def ed25519_key() -> TestKey:
    return make_test_key("EdDSA")


@pytest.fixture(scope="session")
def es256_key() -> TestKey:
    return make_test_key("ES256")


@pytest.fixture(scope="session")
def jwks(ed25519_key: TestKey, es256_key: TestKey) -> dict[str, Any]:
    return {"keys": [ed25519_key.jwk, es256_key.jwk]}


@pytest.fixture(scope="session")
def key_set(jwks: dict[str, Any]) -> KeySet:
    return KeySet.from_jwks(jwks)


@pytest.fixture
def make_token(ed25519_key: TestKey) -> TokenFactory:
    """``make_token(key=..., header=..., claims=..., **claim_overrides)`` -> compact JWS.

    ``header`` / ``claims`` may be dicts (merged over the defaults; DROP
    removes a member) or raw ``str``/``bytes`` segment contents.
    """

    def build(
        *,
        key: TestKey | None = None,
        header: dict[str, Any] | str | bytes | None = None,
        claims: dict[str, Any] | str | bytes | None = None,
        now: int = NOW,
        **claim_overrides: Any,
    ) -> str:
        key = key or ed25519_key
        if isinstance(header, (str, bytes)):
            header_segment = b64json(header)
        else:
            merged = {"alg": key.alg, "typ": "rsc+jwt", "kid": key.kid, **(header or {})}
            header_segment = b64json({k: v for k, v in merged.items() if v is not DROP})
        if isinstance(claims, (str, bytes)):
            claims_segment = b64json(claims)
        else:
            claims_segment = b64json(default_claims(now, **{**(claims or {}), **claim_overrides}))
        signing_input = f"{header_segment}.{claims_segment}"
        return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"

    return build


@pytest.fixture
def verifier(key_set: KeySet) -> OfflineVerifier:
    """An in-memory verifier at a scanner of venue ``museum-1``, device ``gate-1``."""
    return OfflineVerifier(key_set, issuer=ISSUER, venue_id="museum-1", device_id="gate-1")


@pytest.fixture
def transit_in() -> dict[str, str]:
    return {"station": "人民广场", "direction": "in", "line": "1"}


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """An empty site directory on ``sys.path``, for distributions written into it."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    yield site
    for module in PLUGIN_MODULES:
        sys.modules.pop(module, None)


@pytest.fixture
def library_plugin(site, monkeypatch) -> Path:
    """``tests/plugin_example`` as if installed: its metadata from its pyproject, its module on the path."""
    project = tomllib.loads((PLUGIN_EXAMPLE / "pyproject.toml").read_text())["project"]
    write_distribution(site, project["name"], project["entry-points"][ENTRY_POINT_GROUP], project["version"])
    monkeypatch.syspath_prepend(str(PLUGIN_EXAMPLE))
    return site
