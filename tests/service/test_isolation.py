"""Contract section 8: ``verifiers`` works with pyjwt and cryptography alone.

The shared virtualenv has Flask, SQLAlchemy, qrcode and Pillow installed (the
service needs them), so merely checking ``sys.modules`` would not prove the
library works without them. Each test runs a fresh interpreter that first
installs a meta-path finder refusing those packages, exactly as if they were
not installed, and then imports and uses ``verifiers``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import ISSUER, NOW

BLOCKED = ["flask", "sqlalchemy", "qrcode", "PIL", "codeservice"]
"""The service's packages, and the service itself: the library never imports them."""

ALLOWED_THIRD_PARTY = {"jwt", "cryptography", "_openssl", "cffi", "_cffi_backend"}  # _openssl: cryptography's

PRELUDE = textwrap.dedent(
    """
    import importlib.abc, json, sys

    BLOCKED = set(json.loads(sys.argv[1]))

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    for name in BLOCKED:
        sys.modules.pop(name, None)
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f"{name} is still importable")
    before = set(sys.modules)
    """
)

USE_THE_LIBRARY = textwrap.dedent(
    """
    import importlib, pkgutil
    import verifiers
    from verifiers import KeySet, OfflineVerifier

    for module in pkgutil.walk_packages(verifiers.__path__, "verifiers."):
        importlib.import_module(module.name)

    given = json.loads(open(sys.argv[2]).read())
    verifier = OfflineVerifier(
        KeySet.from_jwks(given["jwks"]), issuer=given["issuer"], store=given["store"], venue_id="museum-1"
    )
    decisions = [
        verifier.verify(given["token"], "transit", {"station": "A", "direction": "in"}, now=given["now"]),
        verifier.verify(given["token"], "transit", {"station": "A", "direction": "in"}, now=given["now"]),
        verifier.verify("not-a-code", "venue", {}, now=given["now"]),
    ]
    records = verifier.pending_records()
    verifier.close()
    new = set(sys.modules) - before
    print(json.dumps({
        "codes": [decision.code for decision in decisions],
        "records": len(records),
        "loaded_blocked": sorted(n for n in sys.modules if n.partition(".")[0] in BLOCKED),
        "third_party": sorted({n.partition(".")[0] for n in new} - set(sys.stdlib_module_names) - {"verifiers"}),
    }))
    """
)

USE_THE_COMMAND_LINE = textwrap.dedent(
    """
    from verifiers.__main__ import main

    status = main(sys.argv[2:])
    print(json.dumps({
        "status": status,
        "loaded_blocked": sorted(n for n in sys.modules if n.partition(".")[0] in BLOCKED),
    }))
    """
)


def run_without_service_packages(script: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-c", PRELUDE + script, json.dumps(BLOCKED), *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def last_json_line(output: str) -> dict[str, Any]:
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_verifiers_works_without_the_service_packages(tmp_path, jwks, make_token, store):
    given = {
        "jwks": jwks,
        "issuer": ISSUER,
        "token": make_token(),
        "now": NOW,
        "store": str(tmp_path / "scanner.db") if store == "sqlite" else None,
    }
    (tmp_path / "given.json").write_text(json.dumps(given))

    child = run_without_service_packages(USE_THE_LIBRARY, "given.json", cwd=tmp_path)

    assert child.returncode == 0, child.stderr
    result = last_json_line(child.stdout)
    assert result["codes"] == ["accepted", "replayed", "malformed"]
    assert result["records"] == 3
    assert result["loaded_blocked"] == []
    assert set(result["third_party"]) <= ALLOWED_THIRD_PARTY, result["third_party"]


def test_command_line_works_without_the_service_packages(tmp_path, jwks, make_token):
    """``python -m verifiers check`` uses the real clock: the code is issued now."""
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    token = make_token(now=int(time.time()))
    context = json.dumps({"station": "人民广场", "direction": "in"}, ensure_ascii=False)
    arguments = ["check", "--jwks", "jwks.json", "--scene", "transit", "--context", context, token]

    child = run_without_service_packages(USE_THE_COMMAND_LINE, *arguments, cwd=tmp_path)

    assert child.returncode == 0, child.stderr
    lines = child.stdout.strip().splitlines()
    decision, result = json.loads(lines[-2]), json.loads(lines[-1])
    assert (result["status"], decision["ok"], decision["code"]) == (0, True, "accepted")
    assert decision["detail"]["station"] == "人民广场"
    assert result["loaded_blocked"] == []


def test_the_block_really_hides_the_packages(tmp_path):
    """The guard itself: in the child, importing the service's packages fails."""
    probe = textwrap.dedent(
        """
        failures = []
        for name in ["flask", "sqlalchemy.orm", "qrcode", "PIL.Image", "codeservice"]:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError:
                failures.append(name)
        print(json.dumps(failures))
        """
    )

    child = run_without_service_packages("import importlib\n" + probe, cwd=tmp_path)

    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == [
        "flask",
        "sqlalchemy.orm",
        "qrcode",
        "PIL.Image",
        "codeservice",
    ]
