"""Benchmark: the pure check of a device code (contract section 9) against its floor.

Run by hand: ``.venv/bin/python bench/device_verify.py [--rounds N] [--batch N]``.
In one process, interleaved slice by slice (``bench/interleaved.py``) so that
machine noise hits every variant alike:

  (a) the floor: one bare Ed25519 verify (the issuer's signature over the
      credential's Sig_structure) plus one bare P-256 verify (the device's
      over the presentation's), cryptography, keys already loaded
  (b) verifiers.offline_codes.check_offline_code of the same codes: Base45,
      strict CBOR at every level, both Sig_structures, point decompression,
      both verifies, rules 1-5
  (c) OfflineVerifier.verify of the same codes at a clinic desk, in memory:
      (b), then the shared steps (scope, revocation, replay by (cti, t), the
      scene's rules), the decision and its usage record: the whole verify
  (d) as (c), but a gate's day: 20 phones each presenting fresh codes of
      one credential, so that after each phone's first code the verifier's
      credential cache holds its credential (issuer signature, claims and
      point decompression not redone); (a)-(c) have a new credential in
      every code, so the cache never helps them

Prints µs/op and (b)'s, (c)'s and (d)'s ratios to (a), by the clock and by CPU time
(medians of ratios paired slice by slice); then the QR
version (error correction M, alphanumeric mode) of a device code for the
default issuer, with and without ``cat``.
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from interleaved import Samples, report, run_interleaved  # bench/, run as a script

from verifiers import DEFAULT_ISSUER, KeySet, OfflineVerifier, cbor
from verifiers.base45 import b45decode
from verifiers.cose import cose_key_from_p256, parse_sign1
from verifiers.jose import b64url_decode, jwk_from_public_key, kid_for
from verifiers.offline_codes import check_offline_code, device_code, mint_credential
from verifiers.tokens import VerificationRules


def device_signer() -> tuple[ec.EllipticCurvePrivateKey, Callable[[bytes], bytes]]:
    private = ec.generate_private_key(ec.SECP256R1())

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return private, sign


def phone_credential(
    issuer: Ed25519PrivateKey, kid: str, now: int, cat: str | None = None
) -> tuple[bytes, Callable[[bytes], bytes]]:
    """A new phone's credential (24 h, every scope), and the phone's signing function."""
    device, sign = device_signer()
    claims = {
        1: DEFAULT_ISSUER,
        2: secrets.token_urlsafe(12),
        4: now + 86400,
        6: now - 60,
        7: secrets.token_bytes(8),
        8: {1: cose_key_from_p256(device.public_key())},
        "use": "device",
        "scp": ["clinic", "transit", "venue"],
    }
    if cat:
        claims["cat"] = cat
    return mint_credential(claims, alg="EdDSA", kid=b64url_decode(kid), sign=issuer.sign), sign


def make_codes(issuer: Ed25519PrivateKey, kid: str, count: int, now: int, cat: str | None = None) -> list[str]:
    """``count`` codes, each of a new phone's credential."""
    codes = []
    for _ in range(count):
        credential, sign = phone_credential(issuer, kid, now, cat)
        codes.append(device_code(credential, now - 5, sign))
    return codes


def make_presentations(issuer: Ed25519PrivateKey, kid: str, phones: int, each: int, now: int) -> list[str]:
    """``each`` codes of one credential per phone, t one second apart (replay is by (cti, t)), phone by phone."""
    codes = []
    for _ in range(phones):
        credential, sign = phone_credential(issuer, kid, now)
        codes.extend(device_code(credential, now - 55 + i, sign) for i in range(each))
    return codes


def qr_version(text: str) -> int:
    import qrcode
    from qrcode.util import MODE_ALPHA_NUM, QRData

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(QRData(text.encode("ascii"), mode=MODE_ALPHA_NUM))
    code.make(fit=True)
    return code.version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    issuer = Ed25519PrivateKey.generate()
    jwk = jwk_from_public_key(issuer.public_key())
    jwk.update(kid=kid_for(jwk), alg="EdDSA", use="sig")
    keys = KeySet.from_jwks({"keys": [jwk]})
    rules = VerificationRules(issuer=DEFAULT_ISSUER)
    issuer_public = issuer.public_key()
    ecdsa = ec.ECDSA(hashes.SHA256())
    now = int(time.time())

    samples: dict[str, Samples] = {}
    context = {"department": "cardiology"}
    phones = 20
    count = args.batch - args.batch % phones
    for _ in range(args.rounds):
        codes = make_codes(issuer, jwk["kid"], count, now)
        bare = []
        for text in codes:  # the same inputs, prepared outside the timing: the floor is the crypto alone
            presentation = parse_sign1(b45decode(text[5:]))
            credential = parse_sign1(cbor.loads(presentation.payload)[1])
            cose_key = cbor.loads(credential.payload)[8][1]
            device_public = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), (b"\x03" if cose_key[-3] else b"\x02") + cose_key[-2]
            )
            sig = presentation.signature
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            bare.append(
                (credential.signature, credential.to_be_signed(), device_public, der, presentation.to_be_signed())
            )

        def floor(start: int, stop: int) -> None:
            verify = issuer_public.verify
            for issuer_signature, issuer_input, device_public, der, device_input in bare[start:stop]:  # noqa: B023 - called in this iteration only
                verify(issuer_signature, issuer_input)
                device_public.verify(der, device_input, ecdsa)

        def check(start: int, stop: int) -> None:
            for text in codes[start:stop]:  # noqa: B023 - called in this iteration only
                check_offline_code(text, keys, rules, now)

        verifier = OfflineVerifier(keys, issuer=DEFAULT_ISSUER, venue_id="hospital-1", device_id="desk-1")

        def verify(start: int, stop: int) -> None:
            for text in codes[start:stop]:  # noqa: B023 - called in this iteration only
                verifier.verify(text, "clinic", context, now=now)  # noqa: B023

        same_credential = make_presentations(issuer, jwk["kid"], phones, count // phones, now)
        gate = OfflineVerifier(keys, issuer=DEFAULT_ISSUER, venue_id="hospital-1", device_id="desk-2")
        desks = [{"department": f"d{i}"} for i in range(count)]  # one check-in a day per desk

        def verify_again(start: int, stop: int) -> None:
            for index in range(start, stop):
                gate.verify(same_credential[index], "clinic", desks[index], now=now)  # noqa: B023

        run_interleaved({"a": floor, "b": check, "c": verify, "d": verify_again}, count, samples=samples)
        assert all(record["code"] == "accepted" for record in verifier.pending_records(count))
        assert all(record["code"] == "accepted" for record in gate.pending_records(count))

    print(f"{args.rounds} rounds x {count} device codes, interleaved in slices of 50; medians")
    report(
        samples,
        {
            "a": "bare Ed25519 verify + bare P-256 verify",
            "b": "check_offline_code, device code",
            "c": "OfflineVerifier.verify, device code, memory",
            "d": "(c), the same credential again (cache hits)",
        },
        floor="a",
    )
    for cat in (None, "senior"):
        text = make_codes(issuer, jwk["kid"], 1, now, cat)[0]
        print(f"QR, level M, alphanumeric, cat={cat!s:6s}: {len(text)} characters, version {qr_version(text)}")


if __name__ == "__main__":
    main()
