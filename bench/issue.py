"""Benchmark: issuing live codes, with and without their QR image, against qrcode's default.

Run by hand: ``.venv/bin/python bench/issue.py [--rounds N] [--per-round N] [--alg EdDSA|ES256]
[--category senior]``. It prints; it asserts nothing.

In one process, in interleaved rounds (the order rotating each round), it times
what ``GET /api/v1/code`` and ``/api/v1/code.png`` do, without the HTTP layer:

  codes: a fresh code each time (``issue_code`` with a FileSigner from a temporary KeyStore)
    token               the signed token alone
    token + PNG         and ``codeservice.qr.render_png``
    token + SVG         and ``codeservice.qr.render_svg``
    token + default     and ``qrcode.make(token)`` saved as PNG into a BytesIO (the baseline)

  images: the same renderers on tokens issued beforehand (the QR work alone)
    render_png, render_svg, default (the baseline)

and prints, per pipeline, the median over the rounds of ms/op (wall clock, and
this process's CPU time: steadier on a busy machine), ops/s, and its rate over
its group's baseline. Outside the timed part, a sample of the "token + PNG"
images is decoded with zxing-cpp and each token verified with the offline
library against the store's JWKS.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import qrcode
import zxingcpp
from PIL import Image

from codeservice import qr
from codeservice.issuance import CATEGORIES, issue_code, new_code_id
from codeservice.keystore import ALGORITHMS, KeyStore, Signer
from verifiers import KeySet, OfflineVerifier

ISSUER = "urn:codeservice:dev"
SCENES = ("clinic", "transit", "venue")
CODE_TTL = 60
DECODE_SAMPLE = 50


def default_png(token: str) -> bytes:
    """What the qrcode library does by default: the best of 8 masks, drawn by PIL."""
    buffer = io.BytesIO()
    qrcode.make(token).save(buffer, "PNG")
    return buffer.getvalue()


def code_pipelines(signer: Signer, sub: str, category: str | None) -> dict[str, Callable[[], tuple[str, Any]]]:
    def issue() -> str:
        return issue_code(
            signer, sub=sub, scopes=SCENES, category=category, now=int(time.time()), ttl=CODE_TTL, issuer=ISSUER
        )

    def with_image(render: Callable[[str], Any]) -> Callable[[], tuple[str, Any]]:
        def pipeline() -> tuple[str, Any]:
            token = issue()
            return token, render(token)

        return pipeline

    def token_only() -> tuple[str, str]:
        token = issue()
        return token, token

    return {
        "token": token_only,
        "token + PNG": with_image(qr.render_png),
        "token + SVG": with_image(qr.render_svg),
        "token + default": with_image(default_png),
    }


IMAGE_PIPELINES: dict[str, Callable[[str], Any]] = {
    "render_png": qr.render_png,
    "render_svg": qr.render_svg,
    "default": default_png,
}
BASELINES = {"codes": "token + default", "images": "default"}
CHECKED = "token + PNG"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=20, help="operations per pipeline per round")
    parser.add_argument("--alg", choices=ALGORITHMS, default="EdDSA")
    parser.add_argument("--category", choices=CATEGORIES, default=None, help="the codes' cat (default: none)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as keys_dir:
        store = KeyStore(keys_dir)
        store.init(args.alg)
        signer = store.signer()
        jwks = store.jwks()
        codes = code_pipelines(signer, new_code_id(), args.category)
        sample_token, _ = codes["token"]()
        print(
            f"{args.alg} codes{' with cat ' + args.category if args.category else ''}: {len(sample_token)} chars, "
            f"QR version {qr.qr_version(sample_token)} at level M (mask {qr.FIXED_MASK_PATTERN}); "
            f"{args.rounds} rounds x {args.per_round} ops per pipeline, order rotating"
        )
        ours, theirs = qr.render_png(sample_token), default_png(sample_token)
        print(
            f"images: render_png {Image.open(io.BytesIO(ours)).size} px, {len(ours)} B; "
            f"default {Image.open(io.BytesIO(theirs)).size} px, {len(theirs)} B; "
            f"SVG {len(qr.render_svg(sample_token))} chars"
        )

        pipelines: dict[str, Callable[[], Any]] = dict(codes)
        # The image pipelines each take the next of a supply of fresh tokens, issued untimed.
        supply: list[str] = []
        for name, render in IMAGE_PIPELINES.items():
            pipelines[name] = lambda render=render: render(supply.pop())  # type: ignore[misc]
        group = {name: "codes" if name in codes else "images" for name in pipelines}

        for pipeline in pipelines.values():  # warm up: imports, qrcode's tables, key loading
            supply.append(codes["token"]()[0])
            pipeline()

        wall: dict[str, list[float]] = {name: [] for name in pipelines}
        cpu: dict[str, list[float]] = {name: [] for name in pipelines}
        checked: list[tuple[str, bytes, float]] = []
        names = list(pipelines)
        for round_number in range(args.rounds):
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                pipeline = pipelines[name]
                supply[:] = [codes["token"]()[0] for _ in range(args.per_round)] if group[name] == "images" else []
                wall_start, cpu_start = time.perf_counter(), time.process_time()
                outputs = [pipeline() for _ in range(args.per_round)]
                wall[name].append(1000 * (time.perf_counter() - wall_start) / args.per_round)
                cpu[name].append(1000 * (time.process_time() - cpu_start) / args.per_round)
                if name == CHECKED and len(checked) < DECODE_SAMPLE:
                    shown_at = time.time()
                    checked.extend((token, png, shown_at) for token, png in outputs[: DECODE_SAMPLE - len(checked)])

        print()
        print(f"{'median over rounds':20} {'wall clock':>29} {'CPU time':>29}")
        print(f"{'pipeline':20}" + f" {'ms/op':>8} {'ops/s':>8} {'x default':>11}" * 2)
        for kind, baseline in BASELINES.items():
            print(f"-- {kind} (baseline: {baseline})")
            for name in (n for n in pipelines if group[n] == kind):
                line = f"{name:20}"
                for per_op in (wall, cpu):
                    ms = statistics.median(per_op[name])
                    ratio = statistics.median(per_op[baseline]) / ms
                    line += f" {ms:8.3f} {1000 / ms:8.0f} {ratio:10.2f}x"
                print(line)

    decoded = verified = 0
    keys = KeySet.from_jwks(jwks)
    for token, png, issued_at in checked:
        barcodes = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.QRCode)
        if [barcode.text for barcode in barcodes] == [token]:
            decoded += 1
            # At the time it was shown, by a scanner of its own (a resident enters a venue once a day).
            verifier = OfflineVerifier(keys, issuer=ISSUER, venue_id="bench", device_id="bench")
            verified += verifier.verify(token, scene="venue", context={}, now=issued_at).ok
    print()
    print(f"zxing-cpp decoded {decoded}/{len(checked)} '{CHECKED}' images back to their token; "
          f"{verified} verified with the offline library against the store's JWKS")


if __name__ == "__main__":
    main()
