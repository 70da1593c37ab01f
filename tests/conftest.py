"""Fixtures shared by every test file: keys, a token factory, a fixed clock."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifiers import KeySet, OfflineVerifier
from verifiers.jose import b64url_encode, jwk_from_public_key, kid_for

VECTORS = Path(__file__).parent / "vectors"
NOW = 1_795_000_000  # a fixed clock: 2026-11-18T11:06:40Z
ISSUER = "urn:codeservice:dev"
ALL_SCENES = ["clinic", "transit", "venue"]


def require_servers() -> bool:
    """In CI a missing server is a failure, not a skip."""
    return os.environ.get("CODESERVICE_REQUIRE_SERVERS") == "1"


def skip_or_fail(reason: str) -> None:
    if require_servers():
        pytest.fail(f"{reason} (CODESERVICE_REQUIRE_SERVERS=1)")
    pytest.skip(reason)


@dataclass
class TestKey:
    """A private key for tests, its public JWK (with kid) and a raw signer."""

    __test__ = False
    alg: str
    private_key: Any
    jwk: dict[str, str]

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    def sign(self, signing_input: bytes) -> bytes:
        if self.alg == "EdDSA":
            return self.private_key.sign(signing_input)
        r, s = decode_dss_signature(self.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def make_test_key(alg: str) -> TestKey:
    private_key = Ed25519PrivateKey.generate() if alg == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, str] = jwk_from_public_key(private_key.public_key())
    jwk.update(kid=kid_for(jwk), alg=alg, use="sig")
    return TestKey(alg, private_key, jwk)


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


def b64json(value: Any) -> str:
    raw = value if isinstance(value, (bytes, str)) else json.dumps(value, separators=(",", ":"))
    return b64url_encode(raw.encode("utf-8") if isinstance(raw, str) else raw)


def default_claims(now: int = NOW, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "q1w2e3r4t5y6u7i8",
        "iat": now,
        "exp": now + 60,
        "jti": b64url_encode(secrets.token_bytes(8)),
        "scp": list(ALL_SCENES),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not DROP}


DROP = object()
"""Pass as a claim or header value to leave that member out."""

TokenFactory = Callable[..., str]


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


# -- the service ---------------------------------------------------------------

PG_URL = os.environ.get("CODESERVICE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def gb11643_id(body17: str) -> str:
    """A resident ID number: 17 digits and their GB 11643 check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(body17, weights, strict=True))
    return body17 + "10X98765432"[total % 11]


DEMO_PASSWORD = "correct horse battery"


def registration(**overrides: Any) -> dict[str, Any]:
    """A valid registration body; a fresh phone and ID number each call."""
    body = {
        "name": "张三明",
        "id_type": "resident_id",
        "id_number": gb11643_id(f"310104{1990 + secrets.randbelow(10)}0101{secrets.randbelow(1000):03d}"),
        "phone": f"13{secrets.randbelow(10**9):09d}",
        "password": DEMO_PASSWORD,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not DROP}


@pytest.fixture(scope="session")
def postgres_schema() -> Any:
    """A private schema on the test PostgreSQL server for this test run."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    schema = f"cs_test_{os.getpid()}"
    engine = sqlalchemy.create_engine(PG_URL)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach it means "absent"
        engine.dispose()
        skip_or_fail(f"PostgreSQL is not reachable at {PG_URL}: {exc.__class__.__name__}")
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    engine.dispose()  # the fault tests restart the server: drop with a fresh connection
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every service test runs on a real SQLite file and on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'codeservice.db'}"
    return request.getfixturevalue("postgres_schema")


def new_keys_dir(directory: Path, alg: str = "EdDSA") -> Path:
    """The service's keys in ``directory``: the personal-data keys and a first signing key."""
    from codeservice.keystore import KeyStore
    from codeservice.pii import DataKeys

    DataKeys.create(directory)
    KeyStore(directory).init(alg)
    return directory


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return new_keys_dir(tmp_path / "keys")


@pytest.fixture
def app_config(database_url: str, keys_dir: Path, tmp_path: Path) -> dict[str, Any]:
    return {
        "DATABASE_URL": database_url,
        "KEYS_DIR": str(keys_dir),
        "ENV": "development",
        "RATE_LIMITS": "off",
    }


@pytest.fixture
def app(app_config: dict[str, Any]) -> Any:
    from codeservice import create_app, db

    application = create_app(app_config)
    application.testing = True
    with application.app_context():
        db.init_db()
    yield application
    with application.app_context():
        from codeservice.models import Base

        engine = db.engine()
        if engine.dialect.name == "postgresql":
            with engine.begin() as connection:
                for table in reversed(Base.metadata.sorted_tables):
                    connection.execute(table.delete())
        engine.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


def add_scanner(runner: Any, *, venue: str = "v1", device: str = "d1", scenes: str = "clinic,transit,venue") -> tuple[int, str]:
    """``scanners add``: the scanner's id and its key (the last line of the output)."""
    result = runner.invoke(args=["scanners", "add", "--venue", venue, "--device", device, "--scenes", scenes])
    assert result.exit_code == 0, result.output
    match = re.match(r"Scanner (\d+):", result.output)
    assert match, result.output
    return int(match.group(1)), result.output.strip().splitlines()[-1]


@pytest.fixture
def scanner_key(runner: Any) -> str:
    """A scanner key of venue ``v1``, device ``d1``, for every scene."""
    return add_scanner(runner)[1]


def service_code(
    app: Any,
    keys_dir: Path,
    *,
    sub: str | None = None,
    scopes: tuple[str, ...] = ("clinic", "transit", "venue"),
    category: str | None = None,
    now: int | None = None,
    ttl: int = 60,
    issuer: str | None = None,
) -> str:
    """A code signed with the service's own signing key."""
    from codeservice.issuance import issue_code, new_code_id
    from codeservice.keystore import KeyStore

    return issue_code(
        KeyStore(keys_dir).signer(),
        sub=sub or new_code_id(),
        scopes=scopes,
        category=category,
        now=int(time.time()) if now is None else now,
        ttl=ttl,
        issuer=issuer or app.config["ISSUER"],
    )


@pytest.fixture
def resident(client: Any) -> dict[str, Any]:
    """A registered resident's registration body (with the password in the clear)."""
    body = registration()
    response = client.post("/api/v1/residents", json=body)
    assert response.status_code == 201, response.get_json()
    return body


@pytest.fixture
def logged_in(client: Any, resident: dict[str, Any]) -> Any:
    """The test client, logged in as ``resident``."""
    response = client.post("/api/v1/session", json={"phone": resident["phone"], "password": resident["password"]})
    assert response.status_code == 200, response.get_json()
    return client
