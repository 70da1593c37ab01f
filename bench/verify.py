"""Benchmark: the offline verify path against a bare Ed25519 verify.

Run by hand: ``.venv/bin/python bench/verify.py [--rounds N] [--batch N]``.
In one process, interleaved slice by slice (``bench/interleaved.py``) so that
machine noise hits every variant alike:

  (a) bare Ed25519 verify (cryptography) of the same signing inputs: the floor
  (b) OfflineVerifier.verify of fresh valid codes, store=None
  (c) the same with an SQLite store (WAL, synchronous=NORMAL)
  (d) the same as (b) with ES256 codes

Prints µs/op and each variant's ratio to (a), by the clock and by CPU time
(medians of ratios paired slice by slice).
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from interleaved import Run, Samples, report, run_interleaved  # bench/, run as a script

from verifiers import KeySet, OfflineVerifier
from verifiers.jose import b64url_decode, b64url_encode, compact_json, jwk_from_public_key, kid_for

ISSUER = "urn:codeservice:dev"
CONTEXT = {"station": "People's Square", "direction": "in", "line": "1"}


def make_signer(alg: str) -> tuple[dict[str, str], Callable[[bytes], bytes]]:
    if alg == "EdDSA":
        private = Ed25519PrivateKey.generate()
        sign = private.sign
    else:
        private = ec.generate_private_key(ec.SECP256R1())

        def sign(data: bytes) -> bytes:
            r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    jwk = jwk_from_public_key(private.public_key())
    jwk.update(kid=kid_for(jwk), alg=alg, use="sig")
    return jwk, sign


def make_tokens(jwk: dict[str, str], sign: Callable[[bytes], bytes], count: int, now: int) -> list[str]:
    header = b64url_encode(compact_json({"alg": jwk["alg"], "typ": "rsc+jwt", "kid": jwk["kid"]}))
    tokens = []
    for _ in range(count):
        claims = {
            "iss": ISSUER,
            # a new resident per code, so the transit scene never sees passback
            "sub": b64url_encode(secrets.token_bytes(12)),
            "iat": now,
            "exp": now + 60,
            "jti": b64url_encode(secrets.token_bytes(8)),
            "scp": ["clinic", "transit", "venue"],
        }
        signing_input = f"{header}.{b64url_encode(compact_json(claims))}"
        tokens.append(f"{signing_input}.{b64url_encode(sign(signing_input.encode('ascii')))}")
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()

    ed_jwk, ed_sign = make_signer("EdDSA")
    es_jwk, es_sign = make_signer("ES256")
    keys = KeySet.from_jwks({"keys": [ed_jwk, es_jwk]})
    ed_public = keys[ed_jwk["kid"]].public_key
    workdir = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    memory = OfflineVerifier(keys, issuer=ISSUER, venue_id="v", device_id="d")
    stored = OfflineVerifier(keys, issuer=ISSUER, venue_id="v", device_id="d", store=workdir / "scanner.db")

    samples: dict[str, Samples] = {}
    for _ in range(args.rounds):
        # Minted each round: on a loaded machine the whole run can outlast a code's 60 s (+10 s leeway).
        now = int(time.time())
        ed_tokens = make_tokens(ed_jwk, ed_sign, args.batch, now)
        ed_tokens_2 = make_tokens(ed_jwk, ed_sign, args.batch, now)
        es_tokens = make_tokens(es_jwk, es_sign, args.batch, now)
        bare = [
            (b64url_decode(t.rsplit(".", 1)[1]), t.rsplit(".", 1)[0].encode("ascii")) for t in ed_tokens
        ]

        def bare_verify(start: int, stop: int) -> None:
            verify = ed_public.verify
            for signature, signing_input in bare[start:stop]:  # noqa: B023 - called in this iteration only
                verify(signature, signing_input)

        def full(verifier: OfflineVerifier, tokens: list[str]) -> Run:
            def run(start: int, stop: int) -> None:
                verify = verifier.verify
                for token in tokens[start:stop]:
                    if not verify(token, "transit", CONTEXT).ok:
                        raise SystemExit("a valid code was rejected: the benchmark is broken")

            return run

        run_interleaved(
            {
                "a": bare_verify,
                "b": full(memory, ed_tokens),
                "c": full(stored, ed_tokens_2),
                "d": full(memory, es_tokens),
            },
            args.batch,
            samples=samples,
        )
        for verifier in (memory, stored):  # keep outboxes from growing round over round
            pending = verifier.pending_records(10 * args.batch)
            verifier.store.mark_synced(record["id"] for record in pending)

    print(f"{args.rounds} rounds x {args.batch} codes, interleaved in slices of 50; medians")
    report(
        samples,
        {
            "a": "bare Ed25519 verify (cryptography)",
            "b": "OfflineVerifier.verify, store=None",
            "c": "OfflineVerifier.verify, SQLite store",
            "d": "OfflineVerifier.verify, ES256, store=None",
        },
        floor="a",
    )
    stored.close()


if __name__ == "__main__":
    main()
