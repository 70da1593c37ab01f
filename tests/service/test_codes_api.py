"""The live code (GET /api/v1/code, /api/v1/code.png) and the JWKS that verifies it.

Every token is checked the way a scanner would: with the offline library and
the key set the service publishes at /.well-known/jwks.json.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from helpers import (
    ALL_SCENES,
    add_scanner,
    gb11643_id,
    new_keys_dir,
    rasterize_svg,
    registration,
)
from PIL import Image

from codeservice import db, qr
from codeservice.context import data_keys
from codeservice.keystore import KeyStore
from codeservice.residents import find_by_phone
from verifiers import KeySet, OfflineVerifier
from verifiers.jose import b64url_decode

# What a scanner at each scene sends with a code.
SCENE_CONTEXTS: dict[str, dict[str, Any]] = {
    "clinic": {"department": "cardiology"},
    "transit": {"station": "People's Square", "direction": "in"},
    "venue": {},
}
CLAIMS = {"iss", "sub", "iat", "exp", "jti", "scp"}
# Measured: a default code is 347 characters, QR version 14 at level M. A
# code with a category is longer by its `,"cat":"senior"` (15 bytes of JSON,
# 20 base64url characters): 367 characters, one version more.
DEFAULT_CODE_CHARS, DEFAULT_CODE_MAX_VERSION = 347, 14
SENIOR_CODE_CHARS, SENIOR_CODE_VERSION = 367, 15
SENIOR_ID_NUMBER = gb11643_id("31010419500101123")  # born 1950-01-01


def get_code(client: Any) -> dict[str, Any]:
    response = client.get("/api/v1/code")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[1]))


def served_key_set(client: Any) -> KeySet:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return KeySet.from_jwks(json.loads(response.data))


def assert_verifies(app: Any, client: Any, token: str) -> None:
    """The token is accepted at every scene by a scanner holding the served key set."""
    keys = served_key_set(client)
    for scene in ALL_SCENES:
        # One scanner per scene: a scanner accepts a given code once.
        verifier = OfflineVerifier(keys, issuer=app.config["ISSUER"], venue_id="museum-1", device_id="gate-1")
        decision = verifier.verify(token, scene=scene, context=SCENE_CONTEXTS[scene])
        assert decision.ok, (scene, decision.to_dict())
        assert decision.code == "accepted"


def read_qr_text(image: Image.Image) -> str:
    (barcode,) = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    return barcode.text


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    return body["error"]


# -- GET /api/v1/code ------------------------------------------------------------


def test_code_shape(app: Any, logged_in: Any) -> None:
    response = logged_in.get("/api/v1/code")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"token", "expires_at", "refresh_after", "qr_svg"}
    assert isinstance(body["token"], str)
    assert type(body["expires_at"]) is int and type(body["refresh_after"]) is int
    assert body["refresh_after"] < body["expires_at"]
    assert body["qr_svg"].startswith("<svg")
    claims = claims_of(body["token"])
    assert claims["exp"] == body["expires_at"]
    assert body["expires_at"] - claims["iat"] == app.config["CODE_TTL"]
    assert claims["iat"] < body["refresh_after"]


def test_code_verifies_at_every_scene(app: Any, logged_in: Any) -> None:
    token = get_code(logged_in)["token"]
    assert_verifies(app, logged_in, token)
    assert claims_of(token)["scp"] == ALL_SCENES


@pytest.mark.parametrize("configured", ["transit", " venue, clinic ", "clinic,clinic"])
def test_configured_scopes_narrow_the_installed_scenes(app_config: dict[str, Any], configured: str) -> None:
    from codeservice import create_app

    app = create_app({**app_config, "SCOPES": configured})
    wanted = sorted({name.strip() for name in configured.split(",")})
    assert list(app.config["ISSUED_SCOPES"]) == wanted


def test_a_configured_scope_that_is_not_installed_stops_the_app(app_config: dict[str, Any]) -> None:
    from codeservice import create_app
    from codeservice.errors import ConfigError

    with pytest.raises(ConfigError, match="not installed: library"):
        create_app({**app_config, "SCOPES": "transit,library"})


def test_code_carries_nothing_personal(logged_in: Any, resident: dict[str, Any]) -> None:
    token = get_code(logged_in)["token"]
    header_segment, claims_segment, _signature = token.split(".")
    claims = claims_of(token)
    assert set(claims) == CLAIMS  # a resident in their thirties: no category
    decoded = (
        token
        + b64url_decode(header_segment).decode("utf-8")
        + b64url_decode(claims_segment).decode("utf-8")
        + json.dumps(claims, ensure_ascii=False)
    )
    for field in ("name", "id_number", "phone", "password"):
        assert resident[field] not in decoded, field
    # Nor any part of the name, or the digits that identify the document and phone.
    assert not set(resident["name"]) & set(decoded)
    assert resident["id_number"][-8:] not in decoded
    assert resident["phone"][-8:] not in decoded


def test_successive_codes_differ_in_jti_only(logged_in: Any) -> None:
    first, second = (claims_of(get_code(logged_in)["token"]) for _ in range(2))
    assert first["jti"] != second["jti"]
    assert first["sub"] == second["sub"]


def test_the_code_period(app: Any, client: Any) -> None:
    """A short lifetime still leaves time between refresh_after and expiry."""
    app.config["CODE_TTL"] = 15
    body = registration()
    client.post("/api/v1/residents", json=body)
    client.post("/api/v1/session", json={"phone": body["phone"], "password": body["password"]})
    code = get_code(client)
    claims = claims_of(code["token"])
    assert claims["exp"] - claims["iat"] == 15
    assert claims["iat"] < code["refresh_after"] < code["expires_at"]


# -- the QR images ---------------------------------------------------------------


def test_png_decodes_to_a_verifying_token(app: Any, logged_in: Any) -> None:
    response = logged_in.get("/api/v1/code.png")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.headers["Cache-Control"] == "no-store"
    image = Image.open(io.BytesIO(response.data))
    assert image.format == "PNG"
    token = read_qr_text(image)
    assert_verifies(app, logged_in, token)


def test_svg_decodes_to_the_token(app: Any, logged_in: Any) -> None:
    code = get_code(logged_in)
    token = read_qr_text(rasterize_svg(code["qr_svg"]))
    assert token == code["token"]
    assert_verifies(app, logged_in, token)


def test_a_default_code_fits_version_14(logged_in: Any) -> None:
    token = get_code(logged_in)["token"]
    assert len(token) == DEFAULT_CODE_CHARS
    assert qr.qr_version(token) <= DEFAULT_CODE_MAX_VERSION


def test_a_seniors_code_is_one_version_larger(app: Any, client: Any) -> None:
    body = registration(id_number=SENIOR_ID_NUMBER)
    assert client.post("/api/v1/residents", json=body).status_code == 201
    client.post("/api/v1/session", json={"phone": body["phone"], "password": body["password"]})
    token = get_code(client)["token"]
    assert claims_of(token)["cat"] == "senior"
    assert set(claims_of(token)) == CLAIMS | {"cat"}
    # `cat` adds 20 characters, which tips the symbol from version 14 into 15
    # at level M: still well within what phone cameras read, but the
    # contract's version-14 budget holds for the default code only.
    assert len(token) == SENIOR_CODE_CHARS
    assert qr.qr_version(token) == SENIOR_CODE_VERSION
    assert_verifies(app, client, token)


# -- refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/code", "/api/v1/code.png"])
def test_not_logged_in(client: Any, path: str) -> None:
    assert error_of(client.get(path), 401)["code"] == "not_authenticated"


@pytest.mark.parametrize("path", ["/api/v1/code", "/api/v1/code.png"])
def test_after_logging_out(logged_in: Any, path: str) -> None:
    assert logged_in.delete("/api/v1/session").status_code == 204
    assert error_of(logged_in.get(path), 401)["code"] == "not_authenticated"


@pytest.mark.parametrize("path", ["/api/v1/code", "/api/v1/code.png"])
def test_a_revoked_resident_gets_no_code(app: Any, logged_in: Any, resident: dict[str, Any], path: str) -> None:
    with app.app_context():
        session = db.session()
        found = find_by_phone(session, data_keys(), resident["phone"])
        assert found is not None
        found.revoked_at = found.created_at
        session.commit()
    assert error_of(logged_in.get(path), 403)["code"] == "code_revoked"


# -- the JWKS ----------------------------------------------------------------------


def test_jwks_is_cacheable(client: Any) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.mimetype == "application/jwk-set+json"
    assert response.headers["Cache-Control"] == "public, max-age=300"
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2  # strong, quoted
    (key,) = json.loads(response.data)["keys"]
    assert key["alg"] == "EdDSA" and key["use"] == "sig"
    assert "d" not in key  # never the private part


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", "*", '"other", {etag}', '"a", W/"b",{etag}'],
    ids=["exact", "weak", "star", "list", "mixed-list"],
)
def test_jwks_not_modified(client: Any, if_none_match: str) -> None:
    first = client.get("/.well-known/jwks.json")
    etag = first.headers["ETag"]
    response = client.get("/.well-known/jwks.json", headers={"If-None-Match": if_none_match.format(etag=etag)})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == first.headers["Cache-Control"]


@pytest.mark.parametrize("if_none_match", ['"other"', '"a", "b"', "", "garbage"])
def test_jwks_modified(client: Any, if_none_match: str) -> None:
    response = client.get("/.well-known/jwks.json", headers={"If-None-Match": if_none_match})
    assert response.status_code == 200
    assert json.loads(response.data)["keys"]


def test_jwks_after_rotation(app: Any, logged_in: Any, keys_dir: Path) -> None:
    before = logged_in.get("/.well-known/jwks.json")
    old_token = get_code(logged_in)["token"]
    (old_key,) = json.loads(before.data)["keys"]

    new_key = KeyStore(keys_dir).rotate()

    after = logged_in.get("/.well-known/jwks.json")
    assert after.headers["ETag"] != before.headers["ETag"]
    assert [key["kid"] for key in json.loads(after.data)["keys"]] == [new_key.kid, old_key["kid"]]
    stale = logged_in.get("/.well-known/jwks.json", headers={"If-None-Match": before.headers["ETag"]})
    assert stale.status_code == 200
    # The old key's codes still verify, and new codes are signed by the new key.
    new_token = get_code(logged_in)["token"]
    assert json.loads(b64url_decode(new_token.split(".")[0]))["kid"] == new_key.kid
    assert_verifies(app, logged_in, old_token)
    assert_verifies(app, logged_in, new_token)


# -- ES256 -------------------------------------------------------------------------


class TestES256:
    """A service configured for ES256 signs with a P-256 key, end to end."""

    @pytest.fixture
    def keys_dir(self, tmp_path: Path) -> Path:
        return new_keys_dir(tmp_path / "keys", "ES256")

    @pytest.fixture
    def app_config(self, app_config: dict[str, Any]) -> dict[str, Any]:
        return {**app_config, "SIGNING_ALG": "ES256"}

    def test_code_verifies(self, app: Any, logged_in: Any) -> None:
        (key,) = json.loads(logged_in.get("/.well-known/jwks.json").data)["keys"]
        assert (key["alg"], key["kty"], key["crv"]) == ("ES256", "EC", "P-256")
        token = get_code(logged_in)["token"]
        assert json.loads(b64url_decode(token.split(".")[0]))["alg"] == "ES256"
        assert_verifies(app, logged_in, token)
        png_token = read_qr_text(Image.open(io.BytesIO(logged_in.get("/api/v1/code.png").data)))
        assert_verifies(app, logged_in, png_token)
        assert qr.qr_version(token) <= DEFAULT_CODE_MAX_VERSION


def test_service_codes_are_valid_at_an_installed_plug_in_scene(library_plugin, app, logged_in, runner):
    """Issue 11: the scopes a code carries come from the installed scenes, plug-ins included."""
    _, key = add_scanner(runner, venue="city-library", device="desk-1", scenes="library,venue")
    token = logged_in.get("/api/v1/code").get_json()["token"]
    response = logged_in.post(
        "/api/v1/verify",
        json={"token": token, "scene": "library", "context": {"branch": "Pudong"}},
        headers={"Authorization": f"Bearer {key}"},
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    decision = response.get_json()
    assert (decision["ok"], decision["code"]) == (True, "accepted"), decision
    assert decision["detail"] == {"branch": "Pudong", "loans_today": 1}
    assert app.config["ISSUED_SCOPES"] == ("clinic", "library", "transit", "venue")
