"""Benchmark: QR images of fresh tokens, codeservice.qr against qrcode's default.

Run by hand: ``.venv/bin/python bench/issue_qr.py [--rounds N] [--per-round N]``.

In one process, in interleaved rounds (the order rotating each round), it
times, on fresh random JWS-shaped tokens of realistic length:

  (a) default    ``qrcode.make(token).save(BytesIO(), "PNG")``
  (b) render_png ``codeservice.qr.render_png(token)``
  (c) render_svg ``codeservice.qr.render_svg(token)``

and prints ms/image (wall clock and this process's CPU time: the CPU
figures hold steadier on a busy machine), images/s and each rate over (a)'s.
Every PNG from (b) is then decoded with zxing-cpp, outside the timed part.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import time
from collections.abc import Callable

import qrcode
import zxingcpp
from PIL import Image

from codeservice import qr

HEADER = "eyJhbGciOiJFZERTQSIsImtpZCI6ImstMjAyNi0wMSIsInR5cCI6InJzYytqd3QifQ"
SIGNATURE_BYTES = 64


def base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def fresh_token(length: int) -> str:
    """``header.payload.signature`` of ``length`` characters, random bytes."""
    signature = base64url(os.urandom(SIGNATURE_BYTES))
    payload_length = length - len(HEADER) - len(signature) - 2
    payload = base64url(os.urandom(payload_length * 3 // 4 + 1))[:payload_length]
    return f"{HEADER}.{payload}.{signature}"


def default_pipeline(token: str) -> bytes:
    buffer = io.BytesIO()
    qrcode.make(token).save(buffer, "PNG")
    return buffer.getvalue()


PIPELINES: dict[str, Callable[[str], bytes | str]] = {
    "(a) default": default_pipeline,
    "(b) render_png": qr.render_png,
    "(c) render_svg": qr.render_svg,
}
BASELINE = "(a) default"
CHECKED = "(b) render_png"


def read_qr_codes(png: bytes) -> list[zxingcpp.Barcode]:
    # QR only: over all formats zxing-cpp also finds a spurious 1D barcode
    # inside a few QR codes in 1000 (any mask, the default pipeline's too).
    image = Image.open(io.BytesIO(png))
    return zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=20, help="images per pipeline per round")
    parser.add_argument("--length", type=int, default=355, help="token length in characters")
    args = parser.parse_args()

    sample = fresh_token(args.length)
    print(f"tokens: {args.length} chars, QR version {qr.qr_version(sample)}, "
          f"mask {qr.FIXED_MASK_PATTERN}; {args.rounds} rounds x {args.per_round} "
          "images per pipeline")
    print(f"image sizes: default {Image.open(io.BytesIO(default_pipeline(sample))).size} px, "
          f"render_png {Image.open(io.BytesIO(qr.render_png(sample))).size} px, "
          f"PNG {len(qr.render_png(sample))} B, SVG {len(qr.render_svg(sample))} chars")

    for pipeline in PIPELINES.values():  # warm up imports and qrcode's per-version tables
        pipeline(sample)

    wall_seconds = dict.fromkeys(PIPELINES, 0.0)
    cpu_seconds = dict.fromkeys(PIPELINES, 0.0)
    checked_outputs: list[tuple[str, bytes]] = []
    names = list(PIPELINES)
    for round_number in range(args.rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            pipeline = PIPELINES[name]
            tokens = [fresh_token(args.length) for _ in range(args.per_round)]
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            outputs = [pipeline(token) for token in tokens]
            wall_seconds[name] += time.perf_counter() - wall_start
            cpu_seconds[name] += time.process_time() - cpu_start
            if name == CHECKED:
                checked_outputs.extend(zip(tokens, outputs))

    images = args.rounds * args.per_round
    print(f"{'':16} {'wall clock':>28} {'CPU time':>28}")
    print(f"{'pipeline':16}" + f" {'ms/image':>8} {'images/s':>8} {'x default':>10}" * 2)
    for name in PIPELINES:
        line = f"{name:16}"
        for seconds in (wall_seconds, cpu_seconds):
            ms_per_image = 1000 * seconds[name] / images
            speedup = seconds[BASELINE] / seconds[name]
            line += f" {ms_per_image:8.2f} {images / seconds[name]:8.0f} {speedup:10.1f}"
        print(line)

    decoded = sum(
        [barcode.text for barcode in read_qr_codes(png)] == [token]
        for token, png in checked_outputs
    )
    print(f"zxing-cpp decoded {decoded}/{len(checked_outputs)} {CHECKED} images "
          "back to their token")


if __name__ == "__main__":
    main()
