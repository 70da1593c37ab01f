"""`flask --app codeservice keys ...`, and the configuration it reads."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from helpers import PROJECT

from codeservice import create_app
from codeservice.config import DEFAULTS, load_config
from codeservice.errors import ConfigError
from codeservice.keystore import KeyStore


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def app(keys_dir: Path) -> Flask:
    return create_app({"KEYS_DIR": str(keys_dir), "TESTING": True})


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def store(keys_dir: Path) -> KeyStore:
    return KeyStore(keys_dir)


# -- keys init / rotate / list / retire ---------------------------------------


def test_init_creates_a_key(runner: FlaskCliRunner, keys_dir: Path) -> None:
    result = runner.invoke(args=["keys", "init"])

    assert result.exit_code == 0, result.output
    (info,) = store(keys_dir).keys()
    assert info.alg == "EdDSA" and info.state == "signing"
    assert result.output == (
        f"Created the personal-data key {keys_dir / 'data.key'}.\n"
        f"Created signing key {info.kid} (EdDSA) in {keys_dir}.\n"
    )
    assert (keys_dir / "data.key").stat().st_mode & 0o777 == 0o600


def test_init_is_safe_to_repeat(runner: FlaskCliRunner, keys_dir: Path) -> None:
    runner.invoke(args=["keys", "init"])
    (info,) = store(keys_dir).keys()

    result = runner.invoke(args=["keys", "init", "--alg", "ES256"])

    assert result.exit_code == 0
    assert "already exists" in result.output and info.kid in result.output
    assert store(keys_dir).keys() == [info]


def test_init_alg_option_and_config_default(keys_dir: Path, tmp_path: Path) -> None:
    runner = create_app({"KEYS_DIR": str(keys_dir)}).test_cli_runner()
    assert runner.invoke(args=["keys", "init", "--alg", "es256"]).exit_code == 0
    assert store(keys_dir).keys()[0].alg == "ES256"

    other = tmp_path / "other"
    runner = create_app({"KEYS_DIR": str(other), "SIGNING_ALG": "ES256"}).test_cli_runner()
    assert runner.invoke(args=["keys", "init"]).exit_code == 0
    assert store(other).keys()[0].alg == "ES256"


def test_init_refuses_an_unknown_alg(runner: FlaskCliRunner, keys_dir: Path) -> None:
    result = runner.invoke(args=["keys", "init", "--alg", "RS256"])
    assert result.exit_code == 2
    assert "RS256" in result.output
    assert not keys_dir.exists()


def test_rotate_then_list(runner: FlaskCliRunner, keys_dir: Path) -> None:
    runner.invoke(args=["keys", "init"])
    (old,) = store(keys_dir).keys()

    result = runner.invoke(args=["keys", "rotate", "--alg", "ES256"])

    assert result.exit_code == 0, result.output
    previous, new = store(keys_dir).keys()
    assert new.alg == "ES256" and new.state == "signing"
    assert previous.kid == old.kid and previous.state == "published"
    assert f"New signing key {new.kid} (ES256)." in result.output
    assert f"previous key {old.kid} no longer signs; it stays published until" in result.output

    listing = runner.invoke(args=["keys", "list"])
    assert listing.exit_code == 0
    lines = listing.output.splitlines()
    assert lines[0] == f"Keys in {keys_dir}:"
    assert lines[1].split() == ["KID", "ALG", "STATE", "CREATED", "PUBLISHED", "UNTIL"]
    assert lines[2].split()[:3] == [old.kid, "EdDSA", "published"]
    assert lines[2].split()[4].endswith("Z")
    assert lines[3].split()[:3] == [new.kid, "ES256", "signing"]
    assert "PRIVATE" not in listing.output and "BEGIN" not in listing.output


def test_list_without_keys(runner: FlaskCliRunner, keys_dir: Path) -> None:
    result = runner.invoke(args=["keys", "list"])
    assert result.exit_code == 0
    assert "No keys in" in result.output and "keys init" in result.output


def test_retire(runner: FlaskCliRunner, keys_dir: Path) -> None:
    runner.invoke(args=["keys", "init"])
    (old,) = store(keys_dir).keys()
    runner.invoke(args=["keys", "rotate"])

    result = runner.invoke(args=["keys", "retire", old.kid])

    assert result.exit_code == 0, result.output
    assert f"Retired key {old.kid}" in result.output
    assert store(keys_dir).keys()[0].state == "retired"
    assert "retired" in runner.invoke(args=["keys", "list"]).output


@pytest.mark.parametrize(
    "args, message",
    [
        (["keys", "rotate"], "no signing key in"),
        (["keys", "retire", "AAAAAAAAAAA"], "no key with kid 'AAAAAAAAAAA'"),
        # base64url kids that start with "-" (one in 64) are kids, not options
        (["keys", "retire", "-vAAAAAAAAA"], "no key with kid '-vAAAAAAAAA'"),
        (["keys", "retire", "--AAAAAAAAA"], "no key with kid '--AAAAAAAAA'"),
        (["keys", "retire", "-hAAAAAAAAA"], "no key with kid '-hAAAAAAAAA'"),
    ],
)
def test_errors_without_keys_are_clean(runner: FlaskCliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert "Traceback" not in result.output


def test_retiring_the_signing_key_is_a_clean_error(runner: FlaskCliRunner, keys_dir: Path) -> None:
    runner.invoke(args=["keys", "init"])
    (info,) = store(keys_dir).keys()
    result = runner.invoke(args=["keys", "retire", info.kid])
    assert result.exit_code == 1
    assert "rotate first" in result.output
    assert "Traceback" not in result.output


def test_a_corrupt_keyring_is_a_clean_error_naming_the_file(runner: FlaskCliRunner, keys_dir: Path) -> None:
    runner.invoke(args=["keys", "init"])
    (keys_dir / "keyring.json").write_text("{oops")
    for args in (["keys", "list"], ["keys", "rotate"], ["keys", "init"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1, args
        assert result.output.startswith(f"Error: {keys_dir / 'keyring.json'}: corrupt")
        assert "Traceback" not in result.output


# -- configuration and the app factory ---------------------------------------------


def test_defaults() -> None:
    assert load_config(None, environ={}) == DEFAULTS
    assert DEFAULTS["ISSUER"] == "urn:codeservice:dev" and DEFAULTS["CODE_TTL"] == 60


def test_environment_then_overrides() -> None:
    environ = {
        "CODESERVICE_CODE_TTL": "120",
        "CODESERVICE_ISSUER": "https://city.example",
        "CODESERVICE_KEY_PUBLISH_GRACE": " 600 ",
        "CODESERVICE_RATE_LIMITS": "off",
        "CODESERVICE_UNKNOWN": "ignored",
        "CODE_TTL": "99",
    }
    config = load_config({"ISSUER": "urn:override", "TESTING": True}, environ=environ)
    assert config["CODE_TTL"] == 120
    assert config["KEY_PUBLISH_GRACE"] == 600
    assert config["ISSUER"] == "urn:override"
    assert config["RATE_LIMITS"] == "off"
    assert config["TESTING"] is True
    assert "UNKNOWN" not in config


@pytest.mark.parametrize(
    "overrides, environ, message",
    [
        ({"CODE_TTL": 14}, {}, "CODE_TTL must be an integer from 15 to 300"),
        ({"CODE_TTL": 301}, {}, "CODE_TTL must be an integer from 15 to 300"),
        ({"CODE_TTL": "60"}, {}, "CODE_TTL must be an integer"),
        (None, {"CODESERVICE_CODE_TTL": "1000"}, "CODE_TTL must be an integer from 15 to 300"),
        (None, {"CODESERVICE_CODE_TTL": "sixty"}, "CODESERVICE_CODE_TTL must be an integer, got 'sixty'"),
        (None, {"CODESERVICE_LEEWAY": "-1"}, "LEEWAY must be a non-negative integer"),
        (None, {"CODESERVICE_SIGNING_ALG": "HS256"}, "SIGNING_ALG must be one of EdDSA, ES256"),
    ],
)
def test_invalid_configuration(overrides, environ, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides, environ=environ)


def test_ttl_bounds_are_accepted() -> None:
    assert load_config({"CODE_TTL": 15}, environ={})["CODE_TTL"] == 15
    assert load_config(None, environ={"CODESERVICE_CODE_TTL": "300"})["CODE_TTL"] == 300


def test_create_app_loads_config_and_resolves_keys_dir_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CODESERVICE_CODE_TTL", "90")
    app = create_app({"KEYS_DIR": "my-keys"})
    assert app.config["KEYS_DIR"] == str(tmp_path / "my-keys")
    assert app.config["CODE_TTL"] == 90
    assert app.config["ISSUER"] == "urn:codeservice:dev"
    assert "keys" in app.cli.commands


def test_create_app_raises_config_error_outside_the_cli() -> None:
    with pytest.raises(ConfigError):
        create_app({"CODE_TTL": 5})


# -- the real command line ------------------------------------------------------------


def flask_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CODESERVICE_", "FLASK_"))}
    environ.update(PYTHONPATH=str(PROJECT), **env)
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "codeservice", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_real_flask_command(tmp_path: Path) -> None:
    init = flask_cli("keys", "init", cwd=tmp_path, CODESERVICE_KEYS_DIR="relative/keys")

    assert init.returncode == 0, init.stderr
    keys_dir = tmp_path / "relative" / "keys"
    body = json.loads((keys_dir / "keyring.json").read_text())
    (entry,) = body["keys"]
    assert init.stdout.endswith(f"Created signing key {entry['kid']} (EdDSA) in {keys_dir}.\n")
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys_dir / entry["file"]).stat().st_mode) == 0o600

    # A key that leaked (readable by others) can still be rotated away from.
    (keys_dir / entry["file"]).chmod(0o644)
    rotate = flask_cli("keys", "rotate", cwd=tmp_path, CODESERVICE_KEYS_DIR=str(keys_dir))
    listing = flask_cli("keys", "list", cwd=tmp_path, CODESERVICE_KEYS_DIR=str(keys_dir))
    bad_ttl = flask_cli("keys", "list", cwd=tmp_path, CODESERVICE_CODE_TTL="5")

    assert rotate.returncode == 0, rotate.stderr
    assert listing.returncode == 0
    assert [line.split()[2] for line in listing.stdout.splitlines()[2:]] == ["published", "signing"]
    # A configuration error: one line, exit 1, no traceback.
    assert bad_ttl.returncode == 1
    assert bad_ttl.stderr == "Error: configuration: CODE_TTL must be an integer from 15 to 300 seconds, got 5\n"


def test_real_flask_command_reports_a_corrupt_keyring_cleanly(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"  # the default KEYS_DIR, under the working directory
    KeyStore(keys_dir).init()
    (keys_dir / "keyring.json").write_text("not json")

    result = flask_cli("keys", "list", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {keys_dir / 'keyring.json'}: corrupt")
    assert "Traceback" not in result.stderr
