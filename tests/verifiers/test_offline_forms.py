"""Contract sections 2, 5, 8 and 9: the three forms through OfflineVerifier, and the steps they share.

First the shared section 9 vectors end to end, run exactly as their README
says (a fresh verifier per case, ``attended``, ``revoked_subs`` and
``revoked_ctis``, ``presented_before``; compare code, form, jti, sub, ok and
an accepted paper code's check_id). Then what the vectors leave out: the
shared steps per form (paper codes have no replay rule but their scenes'
rules hold; ``attendant_required``; revocation by ``cti``; device replay by
``(cti, t)``, not by bytes), the decision and the usage record, the
revocation list's ``credentials``, and ``python -m verifiers check``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import ISSUER, NOW, VECTORS, TestKey, make_test_key
from offline_minting import (
    HINT,
    DeviceKey,
    a_device_code,
    a_paper_code,
    credential,
    credential_claims,
)

from verifiers import KeySet, OfflineVerifier, verify_revocation_list
from verifiers.jose import b64url_encode, compact_json
from verifiers.offline_codes import device_code
from verifiers.revocations import REVOCATIONS_TYPE, RevocationListError
from verifiers.store import SqliteStore

VECTORS_FILE = VECTORS / "section9_vectors.json"
VECTORS = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
DECISION_KEYS = {"ok", "code", "scene", "form", "sub", "jti", "exp", "check_id", "detail", "message"}
RECORD_KEYS = {"id", "scene", "venue_id", "device_id", "sub", "jti", "decided_at", "ok", "code", "detail", "form"}
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

ED25519 = make_test_key("EdDSA")
ES256 = make_test_key("ES256")
KEYS = KeySet.from_jwks({"keys": [ED25519.jwk, ES256.jwk]})
ENTRY = {"station": "人民广场", "direction": "in"}
EXIT = {"station": "徐家汇", "direction": "out"}
VENUE = {}  # the verifier's own venue_id


def verifier(**options: Any) -> OfflineVerifier:
    return OfflineVerifier(KEYS, issuer=ISSUER, venue_id="metro-1", device_id="gate-7", **options)


def cti_of(code: str, at: float = NOW) -> str:
    """The credential id (base64url) a minted code carries, from an accepted decision's jti."""
    decision = verifier(attended=True).verify(code, "clinic", {"department": "d"}, now=at)
    assert decision.ok, decision
    return decision.jti.rsplit("-", 1)[0] if decision.form == "device" else decision.jti  # a cti may hold "-"


# -- the shared vectors, end to end ------------------------------------------------------


def vector_verifier(case: dict[str, Any]) -> OfflineVerifier:
    return OfflineVerifier(
        KeySet.from_jwks(VECTORS["jwks"]),
        issuer=VECTORS["issuer"],
        leeway=VECTORS["leeway"],
        attended=case["attended"],
        revoked=case["revoked_subs"],
        revoked_credentials=case["revoked_ctis"],
    )


def test_the_vectors_file_is_the_shared_one() -> None:
    shared = Path("/work/shared/vectors/section9/section9_vectors.json")
    if shared.exists():
        assert shared.read_bytes() == VECTORS_FILE.read_bytes()
    assert VECTORS["numberOfCases"] == len(VECTORS["cases"]) == 90


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[case["id"] for case in VECTORS["cases"]])
def test_vector_end_to_end(case: dict[str, Any]) -> None:
    """section9_vectors.json, run as its README's runner says; the failing case's id is the test id."""
    v = vector_verifier(case)
    for earlier in case["presented_before"]:
        v.verify(earlier, scene=case["scene"], context=case["context"], now=case["now"])
    d = v.verify(case["code"], scene=case["scene"], context=case["context"], now=case["now"])
    expected = case["expected"]
    assert (d.code, d.form, d.jti, d.sub) == (expected["code"], expected["form"], expected["jti"], expected["sub"])
    assert d.ok is (expected["code"] == "accepted")
    if expected["code"] == "accepted" and expected["form"] == "paper":
        assert d.check_id == expected["check_id"]
    else:
        assert d.check_id is None  # only an accepted paper decision carries it
    assert d.to_dict()["check_id"] == d.check_id


# -- the decision and the usage record -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "form"),
    [("RSD1:", "device"), ("RSD1:%%%", "device"), ("RSP1:00", "paper"), ("RSP1:" + "0" * 5000, "paper"),
     ("rsd1:ABC", "online"), ("not a code", "online"), (None, "online"), (b"RSD1:x", "online")],
)
def test_attack_a_rejection_before_rule_3_takes_its_form_from_the_prefix_alone(text: Any, form: str) -> None:
    v = verifier(attended=True)
    decision = v.verify(text, "venue", VENUE, now=NOW)
    assert (decision.ok, decision.code, decision.form) == (False, "malformed", form)
    assert (decision.sub, decision.jti, decision.exp, decision.check_id) == (None, None, None, None)
    (record,) = v.pending_records()
    assert (record["form"], record["sub"], record["jti"]) == (form, None, None)


def test_an_unknown_scene_still_names_the_form() -> None:
    decision = verifier().verify(a_device_code(ES256), "gym", {}, now=NOW)
    assert (decision.code, decision.form, decision.sub, decision.jti) == ("unknown_scene", "device", None, None)


def test_the_decision_json_has_one_shape_for_every_form() -> None:
    v = verifier(attended=True)
    online_device_paper = [
        v.verify(token, "venue", VENUE, now=NOW)
        for token in (
            make_jws(ED25519),
            a_device_code(ES256, labels={2: "devicesubject0001"}),
            a_paper_code(ED25519, labels={2: "papersubject00001"}),
        )
    ]
    assert [d.code for d in online_device_paper] == ["accepted"] * 3
    as_json = [json.loads(json.dumps(d.to_dict())) for d in online_device_paper]
    assert all(set(d) == DECISION_KEYS for d in as_json)
    assert [d["form"] for d in as_json] == ["online", "device", "paper"]
    assert [d["check_id"] for d in as_json] == [None, None, HINT]
    refused_paper = verifier().verify(a_paper_code(ED25519), "venue", VENUE, now=NOW).to_dict()
    assert (refused_paper["code"], refused_paper["check_id"]) == ("attendant_required", None)


def test_records_name_the_form_and_jti_and_never_hold_check_id() -> None:
    v = verifier(attended=True)
    device_cti, paper_cti = b"\x01" * 8, b"\x02" * 8
    device_text = a_device_code(ES256, t=NOW - 5, labels={7: device_cti})
    paper_text = a_paper_code(ED25519, labels={7: paper_cti, 2: "papersubject00001"})
    v.verify(device_text, "venue", VENUE, now=NOW)
    v.verify(paper_text, "venue", VENUE, now=NOW)
    v.verify(paper_text, "venue", VENUE, now=NOW + 1)  # already_entered: a refused paper decision
    records = v.pending_records()
    assert all(set(r) == RECORD_KEYS for r in records)
    assert [(r["form"], r["code"], r["jti"]) for r in records] == [
        ("device", "accepted", f"{b64url_encode(device_cti)}-{NOW - 5}"),
        ("paper", "accepted", b64url_encode(paper_cti)),
        ("paper", "already_entered", b64url_encode(paper_cti)),
    ]
    assert "张" not in json.dumps(records, ensure_ascii=False)  # no part of the hint
    assert "check_id" not in json.dumps(records)


def test_a_verifier_on_sqlite_keeps_form_and_no_check_id(tmp_path: Path) -> None:
    with verifier(attended=True, store=tmp_path / "scanner.db") as v:
        assert v.verify(a_paper_code(ED25519), "venue", VENUE, now=NOW).check_id == HINT
    with OfflineVerifier(KEYS, issuer=ISSUER, store=tmp_path / "scanner.db") as reopened:
        (record,) = reopened.pending_records()
    assert record["form"] == "paper" and "check_id" not in record


# -- the shared steps, per form ---------------------------------------------------------------


def test_attack_a_paper_code_at_an_unstaffed_scanner_is_attendant_required() -> None:
    paper = a_paper_code(ED25519)
    decision = verifier().verify(paper, "venue", VENUE, now=NOW)
    assert (decision.ok, decision.code, decision.form) == (False, "attendant_required", "paper")
    assert decision.sub == credential_claims_sub() and decision.check_id is None
    assert verifier(attended=True).verify(paper, "venue", VENUE, now=NOW).code == "accepted"


def test_a_device_code_and_a_jws_need_no_attendant() -> None:
    v = verifier()
    assert v.verify(a_device_code(ES256), "clinic", {"department": "a"}, now=NOW).code == "accepted"
    assert v.verify(make_jws(ED25519, sub="anothersubject01"), "clinic", {"department": "a"}, now=NOW).ok


def test_attack_the_scene_comes_before_the_attendant() -> None:
    paper = a_paper_code(ED25519, scp=["clinic"])
    assert verifier().verify(paper, "venue", VENUE, now=NOW).code == "scene_not_allowed"
    device = a_device_code(ES256, scp=["clinic"])
    assert verifier().verify(device, "transit", ENTRY, now=NOW).code == "scene_not_allowed"


def test_attendant_must_be_a_boolean() -> None:
    from verifiers import ConfigurationError

    with pytest.raises(ConfigurationError):
        verifier(attended="yes")


def test_a_paper_code_is_shown_again_and_again_but_one_venue_entry_a_day() -> None:
    v = verifier(attended=True)
    paper = a_paper_code(ED25519)
    first = v.verify(paper, "venue", VENUE, now=NOW)
    again = v.verify(paper, "venue", VENUE, now=NOW + 60)
    assert (first.code, again.code) == ("accepted", "already_entered")  # not replayed: no replay rule
    assert first.jti == again.jti  # a paper code's jti repeats
    elsewhere = OfflineVerifier(KEYS, issuer=ISSUER, venue_id="museum-2", attended=True)
    assert elsewhere.verify(paper, "venue", VENUE, now=NOW + 120).code == "accepted"
    clinic = [v.verify(paper, "clinic", {"department": dept}, now=NOW + 5) for dept in ("eye", "eye", "dental")]
    assert [d.code for d in clinic] == ["accepted", "already_checked_in", "accepted"]


def test_a_paper_code_at_the_gate_passback_and_a_trip_per_entry_record() -> None:
    v = verifier(attended=True)
    paper = a_paper_code(ED25519)
    entry = v.verify(paper, "transit", ENTRY, now=NOW)
    passback = v.verify(paper, "transit", ENTRY, now=NOW + 30)
    exit_ = v.verify(paper, "transit", EXIT, now=NOW + 900)
    second_entry = v.verify(paper, "transit", ENTRY, now=NOW + 3600)
    assert [d.code for d in (entry, passback, exit_, second_entry)] == ["accepted", "passback", "accepted", "accepted"]
    assert entry.detail["trip_id"] == entry.record_id == passback.detail["trip_id"] == exit_.detail["trip_id"]
    assert second_entry.detail["trip_id"] == second_entry.record_id != entry.record_id  # same jti, a new trip
    assert entry.jti == second_entry.jti


def test_attack_a_device_code_again_is_replayed() -> None:
    v = verifier()
    code = a_device_code(ES256)
    assert v.verify(code, "clinic", {"department": "eye"}, now=NOW).code == "accepted"
    again = v.verify(code, "clinic", {"department": "dental"}, now=NOW + 1)
    assert (again.code, again.form, again.jti) == ("replayed", "device", v.pending_records()[0]["jti"])


def high_s(signature: bytes) -> bytes:
    r, s = signature[:32], int.from_bytes(signature[32:], "big")
    return r + (P256_ORDER - s).to_bytes(32, "big")


def test_attack_a_high_s_twin_of_an_accepted_device_code_is_replayed() -> None:
    """Replay is by (cti, t), not by the code's bytes: the same presentation signed anew is a replay."""
    device = DeviceKey()
    issued = credential(ES256, credential_claims("device", device=device))
    low = device_code(issued, NOW - 5, device.sign)
    twin = device_code(issued, NOW - 5, lambda data: high_s(device.sign(data)))
    resigned = device_code(issued, NOW - 5, device.sign)  # a fresh random nonce: new bytes again
    assert len({low, twin, resigned}) == 3
    v = verifier()
    assert v.verify(twin, "clinic", {"department": "eye"}, now=NOW).code == "accepted"  # high-S accepted once
    assert v.verify(low, "clinic", {"department": "dental"}, now=NOW).code == "replayed"
    assert v.verify(resigned, "clinic", {"department": "ent"}, now=NOW).code == "replayed"
    later = device_code(issued, NOW + 25, device.sign)  # the phone's next code: a new t
    assert v.verify(later, "clinic", {"department": "ent"}, now=NOW + 30).code == "accepted"


def test_a_refused_device_code_does_not_count_as_presented() -> None:
    v = verifier()
    code = a_device_code(ES256, scp=["clinic"])
    assert v.verify(code, "venue", VENUE, now=NOW).code == "scene_not_allowed"
    assert v.verify(code, "clinic", {"department": "eye"}, now=NOW).code == "accepted"


def test_the_replay_memory_of_a_device_code_ends_when_it_can_no_longer_be_shown() -> None:
    v = verifier()
    code = a_device_code(ES256, t=NOW - 5)
    assert v.verify(code, "clinic", {"department": "eye"}, now=NOW).ok
    assert v.store._jtis == {f"{v.pending_records()[0]['jti']}": NOW - 5 + 60 + 10 + 1}  # type: ignore[attr-defined]


def test_a_paper_code_claims_no_jti() -> None:
    v = verifier(attended=True)
    assert v.verify(a_paper_code(ED25519), "clinic", {"department": "eye"}, now=NOW).ok
    assert v.store._jtis == {}  # type: ignore[attr-defined]


@pytest.mark.parametrize("form", ["device", "paper"])
def test_attack_a_revoked_credential_is_revoked(form: str) -> None:
    code = a_device_code(ES256) if form == "device" else a_paper_code(ED25519)
    cti = cti_of(code)
    v = verifier(attended=True, revoked_credentials=[cti])
    decision = v.verify(code, "venue", VENUE, now=NOW)
    assert (decision.code, decision.form, decision.sub) == ("revoked", form, credential_claims_sub())
    assert decision.check_id is None
    assert verifier(attended=True, revoked_credentials=["AAAAAAAAAAA"]).verify(code, "venue", VENUE, now=NOW).ok


@pytest.mark.parametrize("form", ["device", "paper"])
def test_attack_a_revoked_resident_is_revoked_in_every_form(form: str) -> None:
    code = a_device_code(ES256) if form == "device" else a_paper_code(ED25519)
    v = verifier(attended=True, revoked=[credential_claims_sub()])
    assert v.verify(code, "venue", VENUE, now=NOW).code == "revoked"


def test_attack_a_cti_on_the_list_does_not_revoke_a_jws_whose_jti_is_the_same_text() -> None:
    jws = make_jws(ED25519, jti="AAAAAAAAAAA")
    assert verifier(revoked_credentials=["AAAAAAAAAAA"]).verify(jws, "venue", VENUE, now=NOW).ok


def test_revocation_comes_after_the_attendant() -> None:
    paper = a_paper_code(ED25519)
    v = verifier(revoked=[credential_claims_sub()])
    assert v.verify(paper, "venue", VENUE, now=NOW).code == "attendant_required"


def test_revocation_comes_before_replay() -> None:
    v = verifier()
    code = a_device_code(ES256)
    assert v.verify(code, "clinic", {"department": "eye"}, now=NOW).ok
    v.set_revocations([], credentials=[cti_of(code)])
    assert v.verify(code, "clinic", {"department": "eye"}, now=NOW).code == "revoked"


def test_revoked_credentials_are_kept_in_the_store_with_the_subs(tmp_path: Path) -> None:
    code = a_device_code(ES256)
    cti = cti_of(code)
    with verifier(store=tmp_path / "scanner.db") as v:
        v.set_revocations(["q1w2e3r4t5y6u7i9"], credentials=[cti], fetched_at=NOW)
    with OfflineVerifier(KEYS, issuer=ISSUER, store=tmp_path / "scanner.db") as reopened:
        assert reopened.revoked == frozenset(["q1w2e3r4t5y6u7i9"])
        assert reopened.revoked_credentials == frozenset([cti])
        assert reopened.verify(code, "clinic", {"department": "eye"}, now=NOW).code == "revoked"


def test_a_store_saved_before_credentials_were_listed_revokes_none(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "scanner.db")
    store.set_meta("revoked", {"subs": ["q1w2e3r4t5y6u7i9"], "fetched_at": NOW, "issued_at": None, "etag": None})
    with OfflineVerifier(KEYS, issuer=ISSUER, store=store) as v:
        assert v.revoked == frozenset(["q1w2e3r4t5y6u7i9"]) and v.revoked_credentials == frozenset()


def test_a_live_credential_list_is_asked_not_copied() -> None:
    class Live:
        def __init__(self) -> None:
            self.ctis: set[str] = set()

        def __contains__(self, cti: object) -> bool:
            return cti in self.ctis

    live = Live()
    v = verifier(revoked_credentials=live)
    first, second = a_device_code(ES256), a_device_code(ES256)
    assert v.verify(first, "clinic", {"department": "eye"}, now=NOW).ok
    live.ctis.add(cti_of(second))
    assert v.verify(second, "clinic", {"department": "dental"}, now=NOW).code == "revoked"


# -- the revocation list's credentials claim -------------------------------------------------


def signed_list(key: TestKey, claims: dict[str, Any]) -> str:
    header = b64url_encode(compact_json({"alg": key.alg, "typ": REVOCATIONS_TYPE, "kid": key.kid}))
    signing_input = f"{header}.{b64url_encode(compact_json(claims))}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


def test_the_revocation_list_carries_credentials() -> None:
    jws = signed_list(
        ED25519, {"iss": ISSUER, "iat": NOW, "revoked": ["q1w2e3r4t5y6u7i9"], "credentials": ["AQEBAQEBAQE"]}
    )
    revocations = verify_revocation_list(jws, KEYS, ISSUER, NOW)
    assert revocations.subs == frozenset(["q1w2e3r4t5y6u7i9"])
    assert revocations.credentials == frozenset(["AQEBAQEBAQE"])
    subs, issued_at, kid = revocations  # unpacks as before
    assert (subs, issued_at, kid) == (revocations.subs, NOW, ED25519.kid)


def test_a_revocation_list_without_credentials_revokes_none() -> None:
    jws = signed_list(ED25519, {"iss": ISSUER, "iat": NOW, "revoked": []})
    assert verify_revocation_list(jws, KEYS, ISSUER, NOW).credentials == frozenset()


@pytest.mark.parametrize("credentials", ["AQEBAQEBAQE", ["AQEBAQEBAQE", 7], [""], None, {"a": 1}, [["x"]]])
def test_attack_a_revocation_list_with_bad_credentials_is_refused(credentials: Any) -> None:
    jws = signed_list(ED25519, {"iss": ISSUER, "iat": NOW, "revoked": [], "credentials": credentials})
    with pytest.raises(RevocationListError) as refused:
        verify_revocation_list(jws, KEYS, ISSUER, NOW)
    assert refused.value.reason == "malformed" and "credentials" in refused.value.message


# -- python -m verifiers check -----------------------------------------------------------------


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [ED25519.jwk, ES256.jwk]}), encoding="utf-8")
    return path


def run_check(jwks_file: Path, token: str, *extra: str, scene: str = "clinic") -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "verifiers", "check", "--jwks", str(jwks_file), "--scene", scene,
         "--context", '{"department": "eye"}', *extra, token],
        capture_output=True, timeout=60, env={**os.environ}, check=False,
    )
    assert result.stderr == b"", result.stderr
    return result.returncode, json.loads(result.stdout)


def test_cli_checks_a_device_code(jwks_file: Path) -> None:
    now = int(time.time())
    rc, decision = run_check(jwks_file, a_device_code(ES256, t=now - 2, now=now))
    assert (rc, decision["code"], decision["form"], decision["check_id"]) == (0, "accepted", "device", None)
    assert set(decision) == DECISION_KEYS


def test_cli_paper_codes_need_attended(jwks_file: Path) -> None:
    paper = a_paper_code(ED25519, now=int(time.time()))
    rc, decision = run_check(jwks_file, paper)
    assert (rc, decision["code"], decision["form"], decision["check_id"]) == (1, "attendant_required", "paper", None)
    rc, decision = run_check(jwks_file, paper, "--attended")
    assert (rc, decision["code"], decision["form"], decision["check_id"]) == (0, "accepted", "paper", HINT)


def test_cli_a_broken_device_code_is_rejected_not_a_usage_error(jwks_file: Path) -> None:
    rc, decision = run_check(jwks_file, "RSD1:" + "A" * 4, "--attended")
    assert (rc, decision["code"], decision["form"], decision["sub"]) == (1, "malformed", "device", None)


# -- helpers -----------------------------------------------------------------------------------


def credential_claims_sub() -> str:
    return credential_claims()[2]


def make_jws(key: TestKey, *, sub: str = "jwssubject000001", jti: str | None = None) -> str:
    import secrets

    header = b64url_encode(compact_json({"alg": key.alg, "typ": "rsc+jwt", "kid": key.kid}))
    claims = {
        "iss": ISSUER, "sub": sub, "iat": NOW - 5, "exp": NOW + 55,
        "jti": jti or b64url_encode(secrets.token_bytes(8)), "scp": ["clinic", "transit", "venue"],
    }
    signing_input = f"{header}.{b64url_encode(compact_json(claims))}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"
