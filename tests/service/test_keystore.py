"""codeservice.keystore: key files, keyring.json, rotation, retirement, JWKS."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from codeservice.errors import KeyFileError, KeyStoreError
from codeservice.keystore import FileSigner, KeyInfo, KeyStore, Signer
from verifiers.jose import jwk_from_public_key, kid_for, public_key_from_jwk

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
# A rotated-out key stays published for max_code_ttl + leeway + publish_grace.
WINDOW = 300 + 10 + 3600


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def store(keys_dir: Path) -> KeyStore:
    return KeyStore(keys_dir)


@pytest.fixture
def initialised(store: KeyStore) -> KeyStore:
    store.init(now=NOW)
    return store


def write_key_file(path: Path, key, mode: int = 0o600) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(mode)


# -- FileSigner ------------------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_file_signer_signs_raw_jws_signatures(tmp_path: Path, alg: str) -> None:
    key = Ed25519PrivateKey.generate() if alg == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "k.pem"
    write_key_file(path, key)

    signer = FileSigner(path)

    assert isinstance(signer, Signer)
    assert signer.alg == alg
    signature = signer.sign(b"header.claims")
    assert len(signature) == 64
    public = key.public_key()
    if alg == "EdDSA":
        public.verify(signature, b"header.claims")
    else:
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        public.verify(encode_dss_signature(r, s), b"header.claims", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_file_signer_public_jwk_and_contract_kid(tmp_path: Path, alg: str) -> None:
    key = Ed25519PrivateKey.generate() if alg == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "k.pem"
    write_key_file(path, key)
    signer = FileSigner(path)

    jwk = signer.public_jwk()

    expected = jwk_from_public_key(key.public_key())
    assert jwk == {**expected, "kid": signer.kid, "alg": alg, "use": "sig"}
    assert signer.kid == kid_for(expected)
    assert len(signer.kid) == 11
    assert "d" not in jwk
    jwk["kid"] = "changed"
    assert signer.public_jwk()["kid"] == signer.kid  # a copy, not the signer's own


# -- init, rotate, retire, states --------------------------------------------


def test_init_creates_the_directory_key_and_keyring_with_safe_modes(
    store: KeyStore, keys_dir: Path
) -> None:
    info = store.init(now=NOW)

    assert info == KeyInfo(
        kid=info.kid,
        alg="EdDSA",
        file=f"{info.kid}.pem",
        created_at=NOW,
        signing_until=None,
        retired=False,
        state="signing",
        published_until=None,
    )
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys_dir / info.file).stat().st_mode) == 0o600
    assert stat.S_IMODE((keys_dir / "keyring.json").stat().st_mode) == 0o600
    assert sorted(p.name for p in keys_dir.iterdir()) == sorted([info.file, "keyring.json"])
    assert json.loads((keys_dir / "keyring.json").read_text()) == {
        "version": 1,
        "keys": [
            {
                "kid": info.kid,
                "alg": "EdDSA",
                "file": info.file,
                "created_at": NOW,
                "signing_until": None,
                "retired": False,
            }
        ],
    }
    assert (keys_dir / info.file).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_key_file_is_created_0600_even_with_a_permissive_umask(store: KeyStore, keys_dir: Path) -> None:
    old = os.umask(0)
    try:
        info = store.init(now=NOW)
    finally:
        os.umask(old)
    assert stat.S_IMODE((keys_dir / info.file).stat().st_mode) == 0o600


def test_key_file_is_never_created_with_wider_permissions(
    store: KeyStore, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mode is given to open(2) itself with O_EXCL, not set by a later chmod."""
    calls: list[tuple[str, int, int | None]] = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        calls.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    info = store.init(now=NOW)

    creations = [(p, f, m) for p, f, m in calls if f & os.O_CREAT]
    pem = [c for c in creations if c[0].endswith(info.file)]
    assert len(pem) == 1
    _, flags, mode = pem[0]
    assert flags & os.O_EXCL and mode == 0o600
    assert all(m == 0o600 for _, _, m in creations)


def test_init_does_nothing_when_a_key_exists(initialised: KeyStore, keys_dir: Path) -> None:
    before = initialised.keys(NOW)
    files = sorted(p.name for p in keys_dir.iterdir())

    assert initialised.init(alg="ES256", now=NOW + 5) is None

    assert initialised.keys(NOW) == before
    assert sorted(p.name for p in keys_dir.iterdir()) == files


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_init_with_either_algorithm(store: KeyStore, alg: str) -> None:
    info = store.init(alg=alg, now=NOW)
    assert info.alg == alg
    signer = store.signer()
    assert (signer.kid, signer.alg) == (info.kid, alg)


def test_unsupported_algorithm_is_refused(store: KeyStore, keys_dir: Path) -> None:
    with pytest.raises(KeyStoreError, match="EdDSA or ES256"):
        store.init(alg="RS256", now=NOW)
    assert not keys_dir.exists()


def test_rotate_makes_a_new_signing_key_and_keeps_the_old_one_published(initialised: KeyStore) -> None:
    old = initialised.signer()

    new = initialised.rotate(now=NOW + 100)

    assert new.state == "signing" and new.alg == old.alg and new.kid != old.kid
    assert initialised.signer().kid == new.kid
    previous, current = initialised.keys(NOW + 100)
    assert previous.kid == old.kid
    assert previous.signing_until == NOW + 100
    assert previous.state == "published"
    assert previous.published_until == NOW + 100 + WINDOW
    assert current == new


def test_rotate_can_change_the_algorithm_and_otherwise_keeps_it(initialised: KeyStore) -> None:
    assert initialised.rotate(alg="ES256", now=NOW + 1).alg == "ES256"
    assert initialised.rotate(now=NOW + 2).alg == "ES256"
    assert initialised.signer().alg == "ES256"


def test_rotate_without_a_key_points_to_init(store: KeyStore, keys_dir: Path) -> None:
    with pytest.raises(KeyStoreError, match="keys init"):
        store.rotate(now=NOW)
    assert not keys_dir.exists()  # a mistaken path is not silently created


def test_states_over_time(initialised: KeyStore) -> None:
    first = initialised.signer().kid
    initialised.rotate(now=NOW + 1000)

    def state(now: int) -> str:
        return next(k.state for k in initialised.keys(now) if k.kid == first)

    assert state(NOW + 1000) == "published"
    assert state(NOW + 1000 + WINDOW) == "published"
    assert state(NOW + 1000 + WINDOW + 1) == "expired"


def test_window_follows_the_store_settings(keys_dir: Path) -> None:
    store = KeyStore(keys_dir, publish_grace=0, max_code_ttl=60, leeway=5)
    store.init(now=NOW)
    store.rotate(now=NOW)
    old = store.keys(NOW)[0]
    assert old.published_until == NOW + 65


def test_jwks_publishes_the_signing_and_published_keys_only(initialised: KeyStore) -> None:
    a = initialised.signer().kid
    b = initialised.rotate(now=NOW + 10).kid
    c = initialised.rotate(alg="ES256", now=NOW + 20).kid
    d = initialised.rotate(now=NOW + 30 + WINDOW).kid  # by now a is expired, b, c published
    initialised.retire(b, now=NOW + 40 + WINDOW)

    jwks = initialised.jwks(now=NOW + 40 + WINDOW)

    assert [k["kid"] for k in jwks["keys"]] == [d, c]
    assert a not in {k["kid"] for k in jwks["keys"]}
    for jwk in jwks["keys"]:
        assert jwk["use"] == "sig" and jwk["alg"] in ("EdDSA", "ES256")
        assert not {"d", "p", "q"} & set(jwk)
        assert kid_for(jwk) == jwk["kid"]
        public_key_from_jwk(jwk)  # a key verifiers can load
    json.dumps(jwks)


def test_jwks_keys_verify_what_the_signer_signs(initialised: KeyStore) -> None:
    signer = initialised.signer()
    (jwk,) = initialised.jwks(NOW)["keys"]
    public_key_from_jwk(jwk).verify(signer.sign(b"x.y"), b"x.y")


def test_jwks_of_an_empty_store(store: KeyStore) -> None:
    assert store.jwks(NOW) == {"keys": []}
    assert store.keys(NOW) == []


def test_signer_without_keys_says_to_run_init(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match=r"run `flask --app codeservice keys init`"):
        store.signer()


def test_retire_withdraws_a_published_key(initialised: KeyStore) -> None:
    old = initialised.signer().kid
    initialised.rotate(now=NOW + 1)

    info = initialised.retire(old, now=NOW + 2)

    assert info.state == "retired" and info.retired and info.published_until is None
    assert old not in {k["kid"] for k in initialised.jwks(NOW + 2)["keys"]}
    assert initialised.retire(old, now=NOW + 3).state == "retired"  # idempotent


def test_retire_refuses_the_signing_key(initialised: KeyStore) -> None:
    kid = initialised.signer().kid
    with pytest.raises(KeyStoreError, match="rotate first"):
        initialised.retire(kid, now=NOW)
    assert initialised.keys(NOW)[0].state == "signing"


def test_retire_refuses_an_unknown_kid(initialised: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="no key with kid 'AAAAAAAAAAA'"):
        initialised.retire("AAAAAAAAAAA", now=NOW)


def test_state_survives_a_new_keystore_instance(initialised: KeyStore, keys_dir: Path) -> None:
    initialised.rotate(alg="ES256", now=NOW + 1)
    again = KeyStore(keys_dir)
    assert again.keys(NOW + 1) == initialised.keys(NOW + 1)
    assert again.signer().public_jwk() == initialised.signer().public_jwk()
    assert again.jwks(NOW + 1) == initialised.jwks(NOW + 1)


def test_a_second_store_sees_a_rotation(initialised: KeyStore, keys_dir: Path) -> None:
    other = KeyStore(keys_dir)
    before = other.signer().kid
    new = initialised.rotate(now=NOW + 1)
    assert other.signer().kid == new.kid != before


def test_key_info_is_frozen(initialised: KeyStore) -> None:
    info = initialised.keys(NOW)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.state = "retired"  # type: ignore[misc]


def test_keyring_write_is_atomic(
    initialised: KeyStore, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (keys_dir / "keyring.json").read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(KeyFileError, match=re.escape("keyring.json: cannot write: No space left on device")):
        initialised.rotate(now=NOW + 1)

    assert (keys_dir / "keyring.json").read_bytes() == before
    assert not [p for p in keys_dir.iterdir() if p.name.endswith(".tmp")]


def test_constructor_refuses_negative_windows(keys_dir: Path) -> None:
    with pytest.raises(ValueError, match="publish_grace"):
        KeyStore(keys_dir, publish_grace=-1)


def test_from_config_uses_the_contract_maximum_lifetime(keys_dir: Path) -> None:
    """A rotated-out key stays published while anything it signed may be valid: a paper credential, 180 days."""
    store = KeyStore.from_config({"KEYS_DIR": keys_dir, "KEY_PUBLISH_GRACE": 60, "LEEWAY": 10, "CODE_TTL": 15})
    # max_code_ttl: the longest anything a key signs may be valid, a paper credential's 180 days (section 9)
    assert (store.directory, store.publish_grace, store.leeway, store.max_code_ttl) == (keys_dir, 60, 10, 180 * 86400)


def test_a_rotated_out_key_stays_published_while_a_paper_credential_it_signed_may_be_valid(keys_dir: Path) -> None:
    """Contract section 9: a key stays in the JWKS while any credential it signed may be valid, paper included."""
    store = KeyStore.from_config({"KEYS_DIR": keys_dir, "KEY_PUBLISH_GRACE": 60, "LEEWAY": 10, "CODE_TTL": 15})
    old_kid = store.init("EdDSA", now=NOW - 60).kid
    store.rotate(now=NOW)
    last_paper_day = NOW + 180 * 86400 + 10  # a card signed just before the rotation, at its expiry and leeway

    assert old_kid in {key["kid"] for key in store.jwks(now=last_paper_day)["keys"]}
    assert old_kid not in {key["kid"] for key in store.jwks(now=last_paper_day + 60 + 1)["keys"]}


# -- bad files: one KeyFileError naming the file ------------------------------


def signing_key_path(store: KeyStore) -> Path:
    return store.directory / store.keys(NOW)[-1].file


def fresh(store: KeyStore) -> KeyStore:
    """A new instance, so nothing loaded before is cached."""
    return KeyStore(store.directory)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602, 0o610])
def test_key_file_open_to_group_or_others_is_refused(initialised: KeyStore, mode: int) -> None:
    path = signing_key_path(initialised)
    path.chmod(mode)
    with pytest.raises(KeyFileError) as caught:
        fresh(initialised).signer()
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: mode {mode:04o}")
    assert "chmod 600" in str(caught.value)


def test_jwks_also_refuses_an_exposed_key(initialised: KeyStore) -> None:
    path = signing_key_path(initialised)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="mode 0644"):
        fresh(initialised).jwks(NOW)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "not a valid PEM private key"),
        (b"garbage\n", "not a valid PEM private key"),
        (b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2Vw\n-----END PRIVATE KEY-----\n", "not a valid PEM"),
        (b"\xff\xfe\x00binary", "not a valid PEM private key"),
    ],
    ids=["empty", "garbage", "truncated", "binary"],
)
def test_corrupt_key_file(initialised: KeyStore, content: bytes, problem: str) -> None:
    path = signing_key_path(initialised)
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=problem) as caught:
        fresh(initialised).signer()
    assert caught.value.path == str(path)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_truncated_copy_of_the_real_key(initialised: KeyStore) -> None:
    path = signing_key_path(initialised)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(KeyFileError, match="not a valid PEM private key"):
        fresh(initialised).signer()


def test_encrypted_key_file(initialised: KeyStore) -> None:
    path = signing_key_path(initialised)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(KeyFileError, match="encrypted"):
        fresh(initialised).signer()


def test_public_key_instead_of_private(initialised: KeyStore) -> None:
    path = signing_key_path(initialised)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(KeyFileError, match="not a valid PEM private key"):
        fresh(initialised).signer()


@pytest.mark.parametrize(
    "make",
    [
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        lambda: ec.generate_private_key(ec.SECP384R1()),
    ],
    ids=["rsa", "p384"],
)
def test_unsupported_key_type(initialised: KeyStore, make) -> None:
    path = signing_key_path(initialised)
    write_key_file(path, make())
    with pytest.raises(KeyFileError, match=re.escape("only Ed25519 (EdDSA) and P-256 (ES256) are supported")):
        fresh(initialised).signer()


def test_key_file_swapped_for_another_key(initialised: KeyStore) -> None:
    path = signing_key_path(initialised)
    write_key_file(path, Ed25519PrivateKey.generate())
    with pytest.raises(KeyFileError, match=re.escape("but keyring.json lists")):
        fresh(initialised).signer()


def test_missing_key_file(initialised: KeyStore) -> None:
    path = signing_key_path(initialised)
    path.unlink()
    with pytest.raises(KeyFileError, match="cannot open: No such file or directory") as caught:
        fresh(initialised).signer()
    assert caught.value.path == str(path)


def test_key_path_that_is_a_directory(initialised: KeyStore) -> None:
    """An unreadable key, simulated so that it holds for root as well."""
    path = signing_key_path(initialised)
    path.unlink()
    path.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file") as caught:
        fresh(initialised).signer()
    assert caught.value.path == str(path)


def test_key_file_that_open_refuses(initialised: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable key (EACCES), as open(2) reports it to a non-root user."""
    path = signing_key_path(initialised)
    real_open = os.open

    def deny(p, flags, *args, **kwargs):
        if os.fspath(p) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(p, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(KeyFileError, match="cannot open: Permission denied"):
        fresh(initialised).signer()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file anyway; see the simulations above")
def test_key_file_mode_000(initialised: KeyStore) -> None:
    path = signing_key_path(initialised)
    path.chmod(0)
    with pytest.raises(KeyFileError, match="cannot open"):
        fresh(initialised).signer()


def test_fifo_in_place_of_a_key_does_not_hang(initialised: KeyStore) -> None:
    path = signing_key_path(initialised)
    path.unlink()
    os.mkfifo(path, 0o600)
    with pytest.raises(KeyFileError, match="not a regular file"):
        fresh(initialised).signer()


def keyring_with(store: KeyStore, mutate) -> None:
    path = store.keyring_path
    body = json.loads(path.read_text())
    mutate(body)
    path.write_text(json.dumps(body))


CORRUPT_KEYRINGS = {
    "not json": (lambda p: p.write_bytes(b"{not json"), "corrupt: not UTF-8 JSON"),
    "empty": (lambda p: p.write_bytes(b""), "corrupt: not UTF-8 JSON"),
    "array": (lambda p: p.write_text("[]"), "corrupt: not a JSON object"),
    "not utf-8": (lambda p: p.write_bytes(b'{"version": "\xff"}'), "corrupt: not UTF-8 JSON"),
    "duplicate member": (
        lambda p: p.write_text('{"version": 1, "version": 1, "keys": []}'),
        "corrupt: duplicate JSON member",
    ),
    "no version": (lambda p: p.write_text('{"keys": []}'), "'version' must be 1"),
    "keys not a list": (lambda p: p.write_text('{"version": 1, "keys": {}}'), "'keys' must be a list"),
}


@pytest.mark.parametrize("name", list(CORRUPT_KEYRINGS))
def test_corrupt_keyring_file(initialised: KeyStore, name: str) -> None:
    write, problem = CORRUPT_KEYRINGS[name]
    write(initialised.keyring_path)
    for call in (lambda s: s.signer(), lambda s: s.keys(NOW), lambda s: s.jwks(NOW), lambda s: s.init(now=NOW)):
        with pytest.raises(KeyFileError, match=problem) as caught:
            call(fresh(initialised))
        assert caught.value.path == str(initialised.keyring_path)


BAD_ENTRIES = {
    "entry not an object": (lambda b: b["keys"].append("x"), "key entry 2: not an object"),
    "missing member": (lambda b: b["keys"][0].pop("alg"), "members must be exactly"),
    "extra member": (lambda b: b["keys"][0].update(extra=1), "members must be exactly"),
    "bad kid": (lambda b: b["keys"][0].update(kid="short"), "'kid' must be 11 base64url"),
    "bad alg": (lambda b: b["keys"][0].update(alg="RS256"), "'alg' must be one of"),
    "path traversal": (lambda b: b["keys"][0].update(file="../../etc/shadow"), "'file' must be a plain file name"),
    "dot dot": (lambda b: b["keys"][0].update(file=".."), "'file' must be a plain file name"),
    "created_at string": (lambda b: b["keys"][0].update(created_at="2026"), "'created_at' must be an integer"),
    "created_at bool": (lambda b: b["keys"][0].update(created_at=True), "'created_at' must be an integer"),
    "signing_until float": (lambda b: b["keys"][0].update(signing_until=1.5), "'signing_until' must be an integer"),
    "retired string": (lambda b: b["keys"][0].update(retired="no"), "'retired' must be true or false"),
    "retired signing key": (lambda b: b["keys"][-1].update(retired=True), "a retired key must have"),
    "duplicate kid": (lambda b: b["keys"].append(dict(b["keys"][0])), "appears twice"),
    "two signing keys": (lambda b: b["keys"][0].update(signing_until=None), "2 signing keys"),
    "no signing key": (lambda b: b["keys"][-1].update(signing_until=NOW), "0 signing keys"),
}


@pytest.mark.parametrize("name", list(BAD_ENTRIES))
def test_keyring_with_a_bad_entry(initialised: KeyStore, name: str) -> None:
    initialised.rotate(now=NOW + 1)
    mutate, problem = BAD_ENTRIES[name]
    keyring_with(initialised, mutate)
    with pytest.raises(KeyFileError, match=problem) as caught:
        fresh(initialised).keys(NOW)
    assert str(caught.value).startswith(f"{initialised.keyring_path}: corrupt")


def test_keyring_path_that_is_a_directory(store: KeyStore, keys_dir: Path) -> None:
    keys_dir.mkdir()
    (keys_dir / "keyring.json").mkdir()
    with pytest.raises(KeyFileError, match=re.escape("keyring.json: cannot read")):
        store.keys(NOW)
