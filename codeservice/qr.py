"""QR code images of a code's token: PNG bytes and an inline SVG string.

Pure: a token in, an image out; no Flask, no I/O, nothing cached across
tokens (every token is different). Both renderers draw the same
:func:`module_matrix`, at error-correction level M with a 4-module quiet zone.
A token too long for any QR code raises :class:`TokenTooLongError`.

Speed: ``qrcode.make(token)`` saved as PNG spends nearly all its time trying
the 8 mask patterns with a pure-Python penalty score and drawing each module
with PIL. Here the mask is fixed and the PNG is written straight from the
module rows, several times faster (``bench/issue.py`` measures it).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, cast

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.exceptions import DataOverflowError

ERROR_CORRECTION = ERROR_CORRECT_M
QUIET_ZONE_MODULES = 4
# Every mask pattern is valid (ISO/IEC 18004); the standard's choice of the
# lowest-penalty mask only improves scanning margins. Skipping that evaluation
# is the trade-off that makes encoding fast; zxing-cpp still decodes every
# symbol (tests/test_qr.py). Pattern 2 (dark where column % 3 == 0) is the
# sane fixed choice for our tokens: over 200 random ~360-char JWS-shaped
# tokens, scored with qrcode's own penalty, it was most often the best mask
# and had the lowest mean excess over the best (the checkerboards 0 and 1
# were the worst). On blurred, resampled images zxing-cpp decoded it about
# as often as each symbol's lowest-penalty mask (657 vs 664 of 1000); no
# mask was best on every kind of blur.
FIXED_MASK_PATTERN = 2
# Level 1 compresses the long runs of identical pixels well (~3 KB for a
# version-14 symbol at 8 px per module); higher levels cost time for little.
PNG_COMPRESS_LEVEL = 1

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SVG_NAMESPACE = "http://www.w3.org/2000/svg"
_DARK_RUN = re.compile(rb"\x01+")


class TokenTooLongError(ValueError):
    """The token does not fit in the largest QR code (version 40) at level M."""


def qr_version(token: str) -> int:
    """The QR version (1-40) of the token's symbol: the smallest that fits."""
    return _fitted_qr_code(token).version


def module_matrix(token: str) -> list[list[bool]]:
    """The symbol's modules, row by row, ``True`` for dark; no quiet zone."""
    qr = _fitted_qr_code(token)
    # The version is fitted already: make(fit=True) would fit it again.
    qr.make(fit=False)
    return cast(list[list[bool]], qr.modules)


def render_png(token: str, *, box_size: int = 8, border: int = QUIET_ZONE_MODULES) -> bytes:
    """The token's QR code as a 1-bit grayscale PNG.

    ``box_size`` is pixels per module, ``border`` the quiet zone in modules.
    The PNG is encoded here rather than by PIL: for a version-14 symbol at
    8 px per module PIL's save took ~1.5 ms (~1 ms of it packing the pixels
    into bits), this encoding ~0.5 ms.
    """
    if box_size < 1:
        raise ValueError(f"box_size must be at least 1 (got {box_size})")
    _check_border(border)
    modules = module_matrix(token)
    side_modules = len(modules) + 2 * border
    side_px = side_modules * box_size

    # A 1-bit grayscale pixel is 0 for black and 1 for white; each scanline
    # is a filter-type byte (0, none) then its pixels packed into whole bytes.
    dark_px, light_px = "0" * box_size, "1" * box_size
    quiet_px = light_px * border
    scanline_padding = "1" * (-side_px % 8)
    bytes_per_scanline = (side_px + len(scanline_padding)) // 8

    def module_row_scanlines(pixel_bits: str) -> bytes:
        packed = int(pixel_bits + scanline_padding, 2).to_bytes(bytes_per_scanline, "big")
        return (b"\x00" + packed) * box_size

    quiet_rows = module_row_scanlines(light_px * side_modules) * border
    symbol_rows = [
        module_row_scanlines(
            quiet_px + "".join([dark_px if is_dark else light_px for is_dark in row]) + quiet_px
        )
        for row in modules
    ]
    pixels = b"".join([quiet_rows, *symbol_rows, quiet_rows])
    # Width, height, bit depth 1, grayscale, deflate, filter method 0, no interlace.
    header = struct.pack(">IIBBBBB", side_px, side_px, 1, 0, 0, 0, 0)
    return b"".join([
        _PNG_SIGNATURE,
        _png_chunk(b"IHDR", header),
        _png_chunk(b"IDAT", zlib.compress(pixels, PNG_COMPRESS_LEVEL)),
        _png_chunk(b"IEND", b""),
    ])


def render_svg(token: str, *, border: int = QUIET_ZONE_MODULES) -> str:
    """The token's QR code as a standalone SVG to inline in HTML.

    The ``viewBox`` is in modules, quiet zone included, and there is no
    width or height: size it with CSS. A white square is the background and
    one path holds the dark modules, a ``M{x} {y}h{n}v1h-{n}z`` rectangle
    per horizontal run of them.
    """
    _check_border(border)
    modules = module_matrix(token)
    side = len(modules) + 2 * border
    path = "".join(
        f"M{border + x} {border + y}h{length}v1h-{length}z"
        for y, row in enumerate(modules)
        for x, length in _dark_runs(row)
    )
    return (
        f'<svg xmlns="{_SVG_NAMESPACE}" viewBox="0 0 {side} {side}" shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path fill="#000" d="{path}"/>'
        "</svg>"
    )


def _fitted_qr_code(token: str) -> qrcode.QRCode[Any]:
    """A QRCode holding the token, its version the smallest that fits."""
    qr = qrcode.QRCode(
        version=None,
        error_correction=ERROR_CORRECTION,
        border=0,
        mask_pattern=FIXED_MASK_PATTERN,
    )
    qr.add_data(token)
    try:
        qr.best_fit()
    except (DataOverflowError, ValueError) as exc:
        # qrcode 8.2 raises ValueError("Invalid version (was 41, ...)") here.
        raise TokenTooLongError(
            f"a {len(token)}-character token does not fit in a QR code at level M"
        ) from exc
    return qr


def _check_border(border: int) -> None:
    if border < 0:
        raise ValueError(f"border must be 0 or more modules (got {border})")


def _dark_runs(row: Sequence[bool]) -> Iterator[tuple[int, int]]:
    """(start column, length) of each run of dark modules in the row."""
    for run in _DARK_RUN.finditer(bytes(row)):  # a dark module is byte 1
        yield run.start(), run.end() - run.start()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
