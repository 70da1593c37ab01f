"""The verifier's cache of checked device credentials: the same answers with it as without it.

A hit skips only what the same bytes under the same key always give again
(the credential's CBOR, its issuer signature, its claims, the ``cnf``
point); the key set, the allowed algorithms, the times, the presentation,
revocation and replay are checked at every scan.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from helpers import ISSUER, NOW, make_test_key
from offline_minting import DeviceKey, a_device_code, credential, credential_claims

from verifiers import KeySet, OfflineVerifier, cbor
from verifiers.base45 import b45decode
from verifiers.cose import parse_sign1
from verifiers.errors import AlgNotAllowed, ConfigurationError
from verifiers.offline_codes import CredentialCache, check_offline_code, device_code
from verifiers.tokens import VerificationRules

ED25519 = make_test_key("EdDSA")
KEYS = KeySet.from_jwks({"keys": [ED25519.jwk]})
CLINIC = {"department": "cardiology"}


def verifier(**options: Any) -> OfflineVerifier:
    return OfflineVerifier(KEYS, issuer=ISSUER, venue_id="hospital-1", device_id="desk-1", **options)


def presentations(count: int, *, start: int = NOW - 30, **claims: Any) -> list[str]:
    """``count`` device codes of one phone, one credential, 10 s apart."""
    device = DeviceKey()
    issued = credential(ED25519, credential_claims("device", device=device, **claims))
    return [device_code(issued, start + 10 * i, device.sign) for i in range(count)]


def desk() -> dict[str, str]:
    """A clinic desk of a department of its own: the clinic's one check-in a day never refuses a scan here."""
    return {"department": secrets.token_hex(4)}


def credential_of(code: str) -> bytes:
    return cbor.loads(parse_sign1(b45decode(code[len("RSD1:") :])).payload)[1]


def test_the_same_credential_is_checked_once_and_every_presentation_is_accepted() -> None:
    gate, uncached = verifier(), verifier(credential_cache_size=0)
    codes = presentations(3)
    for code in codes[:2]:
        assert gate.verify(code, "clinic", desk(), now=NOW).ok
    assert list(gate.credentials._entries) == [credential_of(codes[0])]
    rules = VerificationRules(issuer=ISSUER)
    for code in codes:  # a hit gives the very code a miss gives
        assert check_offline_code(code, KEYS, rules, NOW, gate.credentials) == check_offline_code(
            code, KEYS, rules, NOW
        )
    hit, miss = gate.verify(codes[2], "clinic", CLINIC, now=NOW), uncached.verify(codes[2], "clinic", CLINIC, now=NOW)
    assert hit.ok and hit.to_dict() == miss.to_dict()
    assert len(gate.credentials) == 1 and len(uncached.credentials) == 0


def test_a_hit_still_checks_replay_and_the_presentation_signature() -> None:
    gate = verifier()
    first, second = presentations(2)
    assert gate.verify(first, "clinic", desk(), now=NOW).ok
    assert gate.verify(first, "clinic", desk(), now=NOW).code == "replayed"
    assert gate.verify(second, "clinic", desk(), now=NOW).ok
    # the cached credential, presented with a signature by a key it does not name
    stolen = device_code(credential_of(first), NOW - 10, DeviceKey().sign)
    assert gate.verify(stolen, "clinic", desk(), now=NOW).code == "bad_signature"


def test_a_hit_checks_the_times_again() -> None:
    gate = verifier()
    device = DeviceKey()
    issued = credential(ED25519, credential_claims("device", device=device))
    assert gate.verify(device_code(issued, NOW - 5, device.sign), "clinic", desk(), now=NOW).ok
    expiry = NOW + 86400
    late = device_code(issued, expiry - 5, device.sign)
    assert gate.verify(late, "clinic", desk(), now=expiry + 100).code == "expired"
    assert gate.verify(late, "clinic", desk(), now=expiry - 1).ok
    early = device_code(issued, NOW + 1000, device.sign)
    assert gate.verify(early, "clinic", desk(), now=NOW).code == "not_yet_valid"


def test_a_key_set_replaced_since_is_a_miss() -> None:
    gate = verifier()
    (code,) = presentations(1, start=NOW - 5)
    assert gate.verify(code, "clinic", desk(), now=NOW - 1).ok
    gate.set_keys(KeySet.from_jwks({"keys": [make_test_key("EdDSA").jwk]}))
    assert gate.verify(code, "clinic", desk(), now=NOW).code == "unknown_key"
    gate.set_keys(KeySet.from_jwks({"keys": [ED25519.jwk]}))  # the same key again, as a new object
    assert gate.verify(code, "clinic", desk(), now=NOW).code == "replayed"  # checked again, then replay


def test_a_hit_is_refused_when_its_algorithm_is_no_longer_allowed() -> None:
    (code,) = presentations(1, start=NOW - 5)
    cache = CredentialCache()
    check_offline_code(code, KEYS, VerificationRules(issuer=ISSUER), NOW, cache)
    assert len(cache) == 1
    only_es256 = VerificationRules(issuer=ISSUER, algorithms=frozenset({"ES256"}))
    with pytest.raises(AlgNotAllowed):
        check_offline_code(code, KEYS, only_es256, NOW, cache)


def test_a_revoked_credential_is_refused_on_a_hit() -> None:
    gate = verifier()
    first, second = presentations(2)
    decision = gate.verify(first, "clinic", desk(), now=NOW)
    assert decision.ok
    gate.set_revocations([], credentials=[decision.jti.rsplit("-", 1)[0]])
    assert gate.verify(second, "clinic", desk(), now=NOW).code == "revoked"


def test_only_credentials_whose_signature_and_claims_held_are_kept() -> None:
    gate = verifier()
    bad_type = presentations(1, labels={4: "tomorrow"})[0]
    assert gate.verify(bad_type, "clinic", desk(), now=NOW).code == "malformed"
    forged = a_device_code(make_test_key("EdDSA"))
    assert gate.verify(forged, "clinic", desk(), now=NOW).code == "unknown_key"
    assert len(gate.credentials) == 0
    # the issuer is checked at every scan (rule 4, second part), so such a credential is kept, and refused each time
    wrong_issuer = presentations(2, labels={1: "urn:someone-else"})
    assert [gate.verify(code, "clinic", desk(), now=NOW).code for code in wrong_issuer] == ["issuer_mismatch"] * 2
    assert len(gate.credentials) == 1


def test_the_cache_is_bounded_least_recently_used_out() -> None:
    gate = verifier(credential_cache_size=2)
    phones = [presentations(2) for _ in range(3)]
    for codes in phones[:2]:
        assert gate.verify(codes[0], "clinic", desk(), now=NOW).ok
    assert gate.verify(phones[0][1], "clinic", desk(), now=NOW).ok  # the first used again: the second is the oldest
    assert gate.verify(phones[2][0], "clinic", desk(), now=NOW).ok
    assert list(gate.credentials._entries) == [credential_of(phones[0][0]), credential_of(phones[2][0])]


@pytest.mark.parametrize("size", [-1, 1.5, "10", None])
def test_the_cache_size_is_a_count(size: object) -> None:
    with pytest.raises(ConfigurationError):
        verifier(credential_cache_size=size)
