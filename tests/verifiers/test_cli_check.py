"""Contract section 6: ``python -m verifiers check``.

Exit status 0 accepted, 1 rejected, 2 a usage error (bad arguments, a key set
that cannot be read); the decision as JSON on standard output; TOKEN ``-``
reads standard input with one trailing newline stripped; never a traceback.
A few cases run the real command in a subprocess; the parametrized ones call
``main()`` in-process for speed.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from helpers import ISSUER
from offline_minting import HINT, a_paper_code

from verifiers.__main__ import build_parser, main
from verifiers.jose import b64url_encode

DECISION_KEYS = {"ok", "code", "scene", "form", "sub", "jti", "exp", "check_id", "detail", "message"}
TRANSIT_IN = json.dumps({"station": "人民广场", "direction": "in"}, ensure_ascii=False)
VENUE_DESK = json.dumps({"venue_id": "museum-1"})


@pytest.fixture
def jwks_file(tmp_path: Path, jwks: dict[str, Any]) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks), encoding="utf-8")
    return path


@pytest.fixture
def fresh_token(make_token):
    """A code valid now: the command reads the real clock."""

    def build(**overrides: Any) -> str:
        return make_token(now=int(time.time()), **overrides)

    return build


@pytest.fixture
def check_args(jwks_file: Path):
    def build(*extra: str, scene: str = "transit", context: str | None = TRANSIT_IN) -> list[str]:
        args = ["check", "--jwks", str(jwks_file), "--scene", scene]
        if context is not None:
            args += ["--context", context]
        return [*args, *extra]

    return build


def run_cli(args: list[str], stdin: bytes = b"", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "verifiers", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def decision_of(stdout: bytes | str) -> dict[str, Any]:
    text = stdout.decode("utf-8") if isinstance(stdout, bytes) else stdout
    assert text.endswith("\n") and text.count("\n") == 1, text
    decision = json.loads(text)
    assert set(decision) == DECISION_KEYS
    return decision


def assert_usage_error(rc: int, stderr: bytes | str, *, one_line: bool = True) -> None:
    text = stderr.decode("utf-8", errors="replace") if isinstance(stderr, bytes) else stderr
    assert rc == 2, text
    assert "Traceback" not in text
    assert "internal error" not in text, text
    if one_line:
        assert text.startswith("python -m verifiers: error: ") and text.count("\n") == 1, text


# -- the real command, in a subprocess ----------------------------------------


def test_an_accepted_code_exits_0_with_the_decision(check_args, fresh_token):
    result = run_cli(check_args(fresh_token()))
    assert result.returncode == 0, result.stderr
    decision = decision_of(result.stdout)
    assert (decision["ok"], decision["code"], decision["scene"]) == (True, "accepted", "transit")
    assert decision["detail"]["station"] == "人民广场"
    assert result.stderr == b""


def test_a_paper_code_is_accepted_with_attended_only(check_args, ed25519_key):
    paper = a_paper_code(ed25519_key, now=int(time.time()))
    staffed = run_cli(check_args("--attended", paper, scene="venue", context=VENUE_DESK))
    assert staffed.returncode == 0, staffed.stderr
    decision = decision_of(staffed.stdout)
    assert (decision["code"], decision["form"], decision["check_id"]) == ("accepted", "paper", HINT)
    unstaffed = run_cli(check_args(paper, scene="venue", context=VENUE_DESK))
    assert unstaffed.returncode == 1, unstaffed.stderr
    refused = decision_of(unstaffed.stdout)
    assert (refused["code"], refused["check_id"]) == ("attendant_required", None)


def test_a_rejected_code_exits_1_with_the_decision(check_args, fresh_token):
    result = run_cli(check_args(fresh_token(scp=["clinic"])))
    assert result.returncode == 1, result.stderr
    decision = decision_of(result.stdout)
    assert (decision["ok"], decision["code"]) == (False, "scene_not_allowed")


def test_the_output_is_utf8_whatever_the_locale(check_args, fresh_token):
    result = run_cli(check_args(fresh_token()), env={"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    assert "人民广场".encode() in result.stdout


@pytest.mark.parametrize("ending", [b"\n", b""])
def test_a_token_on_stdin(check_args, fresh_token, ending):
    result = run_cli(check_args("-"), stdin=fresh_token().encode("ascii") + ending)
    assert result.returncode == 0, result.stdout
    assert decision_of(result.stdout)["code"] == "accepted"


def test_only_one_trailing_newline_is_stripped_from_stdin(check_args, fresh_token):
    result = run_cli(check_args("-"), stdin=fresh_token().encode("ascii") + b"\n\n")
    assert result.returncode == 1
    assert decision_of(result.stdout)["code"] == "malformed"


def test_non_utf8_stdin_is_malformed(check_args):
    result = run_cli(check_args("-"), stdin=b"\xff\xfe\x80.\xc3(.\xed\xa0\x80\n")
    assert result.returncode == 1, result.stderr
    assert decision_of(result.stdout)["code"] == "malformed"
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize("size", [5000, 64 * 1024 + 3, 8 * 1024 * 1024])
def test_a_huge_stdin_is_malformed(check_args, fresh_token, size):
    start = time.monotonic()
    result = run_cli(check_args("-"), stdin=(fresh_token() + "A" * size).encode("ascii"))
    assert result.returncode == 1, result.stderr
    assert decision_of(result.stdout)["code"] == "malformed"
    assert time.monotonic() - start < 30


def test_a_bad_context_is_a_usage_error(check_args, fresh_token):
    result = run_cli(check_args(fresh_token(), context="{not json"))
    assert_usage_error(result.returncode, result.stderr)
    assert result.stdout == b""


@pytest.mark.parametrize(
    "jwks",
    [
        pytest.param(None, id="missing"),
        pytest.param("directory", id="directory"),
        pytest.param(b"", id="empty"),
        pytest.param(b"{not json", id="corrupt"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b'{"keys": {}}', id="not-a-key-set"),
    ],
)
def test_a_key_set_that_cannot_be_read_is_a_usage_error(tmp_path, fresh_token, jwks):
    path = tmp_path / "jwks.json"
    if jwks == "directory":
        path.mkdir()
    elif jwks is not None:
        path.write_bytes(jwks)
    result = run_cli(["check", "--jwks", str(path), "--scene", "transit", "--context", TRANSIT_IN, fresh_token()])
    assert_usage_error(result.returncode, result.stderr)
    assert result.stdout == b""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_key_set_is_a_usage_error(jwks_file, check_args, fresh_token):
    jwks_file.chmod(0)
    result = run_cli(check_args(fresh_token()))
    assert_usage_error(result.returncode, result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="nothing"),
        pytest.param(["check"], id="no-options"),
        pytest.param(["check", "--scene", "transit", "x.y.z"], id="no-jwks"),
        pytest.param(["verify", "x.y.z"], id="unknown-command"),
    ],
)
def test_missing_arguments_are_a_usage_error(args):
    result = run_cli(args)
    assert_usage_error(result.returncode, result.stderr, one_line=False)
    assert b"usage:" in result.stderr


# -- main() in-process ---------------------------------------------------------


@pytest.fixture
def run_main(capsys, monkeypatch):
    """``run_main(args, stdin=b"")`` -> (exit status, stdout, stderr), in-process."""

    def run(args: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
        try:
            rc = main(args)
        except SystemExit as exit_:  # argparse's own usage errors
            rc = exit_.code
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.mark.parametrize(
    "case, rc, code",
    [
        ({}, 0, "accepted"),
        ({"claims": {"iss": "urn:other"}}, 1, "issuer_mismatch"),
        ({"args": ["--issuer", "urn:codeservice:prod"]}, 1, "issuer_mismatch"),
        ({"args": ["--issuer", "urn:codeservice:prod"], "claims": {"iss": "urn:codeservice:prod"}}, 0, "accepted"),
        ({"claims": {"exp": -1000, "iat": -1060}}, 1, "expired"),
        ({"claims": {"exp": -15, "iat": -75}}, 1, "expired"),
        ({"claims": {"exp": -15, "iat": -75}, "args": ["--leeway", "60"]}, 0, "accepted"),
        ({"claims": {"scp": ["venue"]}}, 1, "scene_not_allowed"),
        ({"scene": "clinic", "context": '{"department": "cardiology"}'}, 0, "accepted"),
        ({"scene": "venue", "context": '{"venue_id": "museum-1"}'}, 0, "accepted"),
        ({"scene": "venue", "context": "{}"}, 1, "bad_context"),
        ({"scene": "nowhere"}, 1, "unknown_scene"),
        ({"context": '{"station": "人民广场"}'}, 1, "bad_context"),
        ({"context": '{"station": "人民广场", "direction": "out"}'}, 1, "no_entry"),
        ({"token": "garbage"}, 1, "malformed"),
        ({"token": ""}, 1, "malformed"),
        ({"token": "é" * 50_000}, 1, "malformed"),
        ({"token": "A" * 100_000}, 1, "malformed"),
        ({"stdin": "{token}\n"}, 0, "accepted"),
        ({"stdin": "{token}"}, 0, "accepted"),
        ({"stdin": "{token}\n\n"}, 1, "malformed"),
        ({"stdin": " {token}\n"}, 1, "malformed"),
        ({"stdin": ""}, 1, "malformed"),
        ({"stdin": "\n"}, 1, "malformed"),
        ({"stdin": "A" * 200_000}, 1, "malformed"),
    ],
)
def test_check_in_process(run_main, check_args, fresh_token, case, rc, code):
    now = int(time.time())
    claims = dict(case.get("claims", {}))
    for name in ("exp", "iat"):
        if name in claims:
            claims[name] += now
    token = fresh_token(**claims)
    args = check_args(
        *case.get("args", []),
        scene=case.get("scene", "transit"),
        context=case.get("context", TRANSIT_IN),
    )
    stdin = case.get("stdin")
    if stdin is None:
        status, out, err = run_main([*args, "--", case.get("token", token)])
    else:
        status, out, err = run_main([*args, "-"], stdin=stdin.replace("{token}", token).encode("utf-8"))
    assert (status, err) == (rc, "")
    decision = decision_of(out)
    assert (decision["ok"], decision["code"]) == (rc == 0, code)


def test_a_token_that_starts_with_a_dash_after_double_dash(run_main, check_args):
    status, out, _ = run_main([*check_args(), "--", "-x.y.z"])
    assert status == 1
    assert decision_of(out)["code"] == "malformed"


def test_non_utf8_stdin_in_process(run_main, check_args):
    status, out, _ = run_main([*check_args(), "-"], stdin=b"\xff" * 10 + b"\n")
    assert status == 1
    assert decision_of(out)["code"] == "malformed"


@pytest.mark.parametrize(
    "context",
    [
        "{not json",
        "",
        "[]",
        "null",
        '"{}"',
        "1",
        '{"a": 1, "a": 2}',
        '{"a": NaN}',
        '{"a": 1} x',
        "\udcff",  # an undecodable argument byte, as Python hands it over
        '{"station": "\\ud800", "direction": "in"}',  # a lone surrogate is not UTF-8 text
    ],
)
def test_a_context_that_is_not_a_json_object_is_a_usage_error(run_main, check_args, fresh_token, context):
    status, out, err = run_main(check_args(fresh_token(), context=context))
    assert_usage_error(status, err)
    assert out == ""


@pytest.mark.parametrize(
    "jwks",
    [
        pytest.param(b"[]", id="array"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"keys": [1]}', id="key-not-an-object"),
        pytest.param(b'{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}', id="no-kid"),
        pytest.param(b'{"keys": [{"kid": "k", "kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}', id="short-x"),
        pytest.param(b'{"keys": [{"kid": "k", "kty": "OKP", "crv": [], "x": "AAAA"}]}', id="crv-a-list"),
        pytest.param(b'{"keys": [{"kid": "k", "kty": {}, "crv": "P-256"}]}', id="kty-an-object"),
        pytest.param(b'{"keys": [{"kid": "k", "kty": "RSA", "n": "AQAB", "e": "AQAB"}]}', id="rsa"),
        pytest.param(b'{"keys": [{"kid": "k", "kty": "oct", "k": "c2VjcmV0"}]}', id="symmetric"),
        pytest.param(b'{"keys": [], "keys": []}', id="duplicate-members"),
        pytest.param(b"[" * 100_000, id="deep"),
        pytest.param(b" " * (256 * 1024 + 1), id="too-large"),
    ],
)
def test_a_corrupt_key_set_is_a_usage_error(run_main, tmp_path, fresh_token, jwks):
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks)
    status, out, err = run_main(["check", "--jwks", str(path), "--scene", "transit", fresh_token()])
    assert_usage_error(status, err)
    assert out == ""


def test_a_key_set_holding_a_private_key_is_refused(run_main, tmp_path, fresh_token, ed25519_key):
    raw = ed25519_key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**ed25519_key.jwk, "d": b64url_encode(raw)}]}))
    status, _, err = run_main(["check", "--jwks", str(path), "--scene", "transit", fresh_token()])
    assert_usage_error(status, err)
    assert "private" in err


@pytest.mark.parametrize(
    "jwks",
    [
        "http://jwks.example/keys.json",  # plain http off loopback
        "ftp://127.0.0.1/keys.json",
        "http://127.0.0.1:1/keys.json",  # nothing listens on port 1
        "nul\x00in-path",
    ],
)
def test_a_key_set_source_that_cannot_be_used_is_a_usage_error(run_main, fresh_token, jwks):
    status, out, err = run_main(["check", "--jwks", jwks, "--scene", "transit", fresh_token()])
    assert_usage_error(status, err)
    assert out == ""


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="nothing"),
        pytest.param(["check"], id="no-options"),
        pytest.param(["check", "--jwks", "{jwks}", "--scene", "transit"], id="no-token"),
        pytest.param(["check", "--jwks", "{jwks}", "x.y.z"], id="no-scene"),
        pytest.param(["check", "--scene", "transit", "x.y.z"], id="no-jwks"),
        pytest.param(["check", "--jwks", "{jwks}", "--scene", "transit", "a", "b"], id="two-tokens"),
        pytest.param(["check", "--jwks", "{jwks}", "--scene", "transit", "--leeway", "ten", "x"], id="leeway-not-int"),
        pytest.param(["check", "--jwks", "{jwks}", "--scene", "transit", "--bogus", "x"], id="unknown-option"),
        pytest.param(["verify", "x.y.z"], id="unknown-command"),
    ],
)
def test_bad_arguments_are_a_usage_error(run_main, jwks_file, args):
    status, out, err = run_main([arg.replace("{jwks}", str(jwks_file)) for arg in args])
    assert_usage_error(status, err, one_line=False)
    assert "usage:" in err and out == ""


@pytest.mark.parametrize("leeway", ["-1", "301"])
def test_an_unusable_leeway_is_a_usage_error(run_main, check_args, fresh_token, leeway):
    status, out, err = run_main(check_args("--leeway", leeway, fresh_token()))
    assert_usage_error(status, err)
    assert out == ""


def test_the_default_issuer_is_the_contracts():
    assert build_parser().parse_args(["check", "--jwks", "f", "--scene", "s", "t"]).issuer == ISSUER
