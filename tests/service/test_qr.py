"""codeservice.qr: QR images of a token that zxing-cpp decodes back exactly."""

from __future__ import annotations

import ast
import base64
import io
import json
import random
import string
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import zxingcpp
from helpers import SVG_NAMESPACE, rasterize_svg, svg_dark_runs
from PIL import Image

from codeservice import qr

ERROR_CORRECTION_M_OR_BETTER = {"M", "Q", "H"}
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


def base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def jws_shaped(rng: random.Random, length: int) -> str:
    """``header.payload.signature`` of the given length: a real header, a
    64-byte signature and random payload bytes."""
    header_json = {"alg": "EdDSA", "kid": "k-2026-01", "typ": "rsc+jwt"}
    header = base64url(json.dumps(header_json, separators=(",", ":")).encode())
    signature = base64url(rng.randbytes(64))
    payload_length = length - len(header) - len(signature) - 2
    payload = base64url(rng.randbytes(payload_length * 3 // 4 + 1))[:payload_length]
    return f"{header}.{payload}.{signature}"


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20260101)


@pytest.fixture
def token(rng: random.Random) -> str:
    """A realistic issued token: 355 characters."""
    return jws_shaped(rng, 355)


TOKEN_KINDS = {
    "jws-360": lambda rng: jws_shaped(rng, 360),
    "short": lambda rng: "a.b.c",
    "one-char": lambda rng: "x",
    "long-1000": lambda rng: jws_shaped(rng, 1000),
    "edge-chars": lambda rng: "-_." * 40 + ".-_",
    "digits-only": lambda rng: "".join(rng.choices(string.digits, k=300)),
    "upper-alnum-only": lambda rng: "".join(
        rng.choices(string.ascii_uppercase + string.digits, k=300)
    ),
    "all-token-chars": lambda rng: (
        f".{TOKEN_ALPHABET}.{''.join(rng.choices(TOKEN_ALPHABET, k=200))}."
    ),
}


@pytest.fixture(params=sorted(TOKEN_KINDS))
def any_token(request: pytest.FixtureRequest, rng: random.Random) -> str:
    return TOKEN_KINDS[request.param](rng)


def decode_one(image: Image.Image) -> zxingcpp.Barcode:
    # QR only, as a verifier's scanner is set up: over all formats zxing-cpp
    # also finds a spurious 1D barcode inside a few QR codes in 1000, any mask.
    barcodes = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(barcodes) == 1
    return barcodes[0]


def assert_decodes_to(image: Image.Image, token: str) -> None:
    barcode = decode_one(image)
    assert barcode.text == token
    assert barcode.format == zxingcpp.BarcodeFormat.QRCode
    assert barcode.ec_level in ERROR_CORRECTION_M_OR_BETTER
    assert barcode.extra["DataMask"] == qr.FIXED_MASK_PATTERN
    assert int(barcode.extra["Version"]) == qr.qr_version(token)


def open_png(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    image.load()
    return image


def test_png_decodes_to_the_token(any_token: str) -> None:
    assert_decodes_to(open_png(qr.render_png(any_token)), any_token)


def test_svg_decodes_to_the_token(any_token: str) -> None:
    assert_decodes_to(rasterize_svg(qr.render_svg(any_token)), any_token)


def test_png_decodes_at_other_sizes(token: str) -> None:
    for box_size, border in [(1, 4), (3, 4), (10, 6)]:
        assert_decodes_to(open_png(qr.render_png(token, box_size=box_size, border=border)), token)


def test_realistic_token_is_version_14_at_level_m(token: str) -> None:
    assert len(token) == 355
    assert qr.qr_version(token) == 14
    assert len(qr.module_matrix(token)) == 17 + 4 * 14
    barcode = decode_one(open_png(qr.render_png(token)))
    assert barcode.ec_level == "M"
    assert barcode.extra["Version"] == "14"


def test_version_14_holds_up_to_362_characters(rng: random.Random) -> None:
    assert qr.qr_version(jws_shaped(rng, 362)) == 14
    assert qr.qr_version(jws_shaped(rng, 363)) == 15


def test_version_matches_the_matrix(any_token: str) -> None:
    modules = qr.module_matrix(any_token)
    assert len(modules) == 17 + 4 * qr.qr_version(any_token)
    assert all(len(row) == len(modules) for row in modules)
    assert all(isinstance(module, bool) for row in modules for module in row)


@pytest.mark.parametrize("box_size", [1, 3, 8])
def test_png_is_one_bit_with_a_4_module_quiet_zone(token: str, box_size: int) -> None:
    image = open_png(qr.render_png(token, box_size=box_size))
    side_modules = len(qr.module_matrix(token)) + 2 * qr.QUIET_ZONE_MODULES
    assert image.mode == "1"
    assert image.size == (side_modules * box_size, side_modules * box_size)

    gray = image.convert("L")
    quiet = qr.QUIET_ZONE_MODULES * box_size
    far = gray.width - quiet
    quiet_strips = [
        (0, 0, gray.width, quiet),
        (0, far, gray.width, gray.height),
        (0, 0, quiet, gray.height),
        (far, 0, gray.width, gray.height),
    ]
    for strip in quiet_strips:
        assert gray.crop(strip).getextrema() == (255, 255)
    # The finder patterns' outer corners sit right inside the quiet zone.
    for x, y in [(quiet, quiet), (far - 1, quiet), (quiet, far - 1)]:
        assert gray.getpixel((x, y)) == 0


def test_png_pixels_are_the_module_matrix(token: str) -> None:
    box_size, border = 3, 2
    modules = qr.module_matrix(token)
    image = open_png(qr.render_png(token, box_size=box_size, border=border)).convert("L")
    for y, row in enumerate(modules):
        for x, is_dark in enumerate(row):
            left, top = (border + x) * box_size, (border + y) * box_size
            box = image.crop((left, top, left + box_size, top + box_size))
            assert box.getextrema() == ((0, 0) if is_dark else (255, 255))


def test_png_passes_pillow_verification(token: str) -> None:
    Image.open(io.BytesIO(qr.render_png(token))).verify()


def test_svg_path_is_exactly_the_module_matrix(any_token: str) -> None:
    border = qr.QUIET_ZONE_MODULES
    modules = qr.module_matrix(any_token)
    side, runs = svg_dark_runs(qr.render_svg(any_token))
    assert side == len(modules) + 2 * border
    dark_in_svg = {(x + i, y) for x, y, length in runs for i in range(length)}
    dark_in_matrix = {
        (border + x, border + y)
        for y, row in enumerate(modules)
        for x, is_dark in enumerate(row)
        if is_dark
    }
    assert dark_in_svg == dark_in_matrix


def test_svg_is_standalone_and_scalable(token: str) -> None:
    svg = qr.render_svg(token)
    root = ET.fromstring(svg)
    side = len(qr.module_matrix(token)) + 2 * qr.QUIET_ZONE_MODULES
    assert root.tag == f"{SVG_NAMESPACE}svg"
    assert root.get("viewBox") == f"0 0 {side} {side}"
    assert root.get("shape-rendering") == "crispEdges"
    assert root.get("width") is None and root.get("height") is None
    assert [child.tag for child in root] == [f"{SVG_NAMESPACE}rect", f"{SVG_NAMESPACE}path"]
    background = root[0].attrib
    assert background == {"width": str(side), "height": str(side), "fill": "#fff"}
    for external in ("href", "url(", "<image", "<script", "<style", "@import"):
        assert external not in svg


def test_svg_border_is_configurable(token: str) -> None:
    side, runs = svg_dark_runs(qr.render_svg(token, border=0))
    assert side == len(qr.module_matrix(token))
    assert min(x for x, _, _ in runs) == 0 and min(y for _, y, _ in runs) == 0


def test_rendering_is_deterministic(token: str) -> None:
    assert qr.render_png(token) == qr.render_png(token)
    assert qr.render_svg(token) == qr.render_svg(token)


@pytest.mark.parametrize(
    ("render", "bad_options"),
    [
        (qr.render_png, {"box_size": 0}),
        (qr.render_png, {"border": -1}),
        (qr.render_svg, {"border": -1}),
    ],
)
def test_bad_sizes_are_rejected(
    token: str, render: Callable[..., object], bad_options: dict[str, int]
) -> None:
    with pytest.raises(ValueError):
        render(token, **bad_options)


def test_too_long_a_token_is_rejected() -> None:
    assert qr.qr_version("a" * 2331) == 40
    for call in (qr.qr_version, qr.module_matrix, qr.render_png, qr.render_svg):
        with pytest.raises(qr.TokenTooLongError):
            call("a" * 2332)


def test_module_is_pure() -> None:
    tree = ast.parse(Path(qr.__file__).read_text())
    nodes = list(ast.walk(tree))
    imported = {
        alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {node.module or "" for node in nodes if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] == "flask"}
