"""``./dev run``: the project on its embedded default, for a first look.

Creates the dev signing key in ``keys/`` (if there is none), issues a demo
resident's code, and verifies it offline with ``python -m verifiers check``
against the published JWKS, printing each step.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import create_app
from .issuance import issue_code, new_code_id
from .keystore import KeyStore


def main() -> int:
    app = create_app({"ENV": "development"})
    store = KeyStore.from_config(app.config)
    created = store.init(app.config["SIGNING_ALG"])
    signer = store.signer()
    print(f"signing key {signer.kid} ({signer.alg}) in {store.directory}" + (" (new)" if created else ""))

    token = issue_code(
        signer,
        sub=new_code_id(),
        scopes=["clinic", "transit", "venue"],
        category="senior",
        now=int(time.time()),
        ttl=app.config["CODE_TTL"],
        issuer=app.config["ISSUER"],
    )
    print(f"demo resident's code ({len(token)} characters):\n{token}\n")

    with tempfile.TemporaryDirectory() as workdir:
        jwks_path = Path(workdir) / "jwks.json"
        jwks_path.write_text(json.dumps(store.jwks()))
        context = json.dumps({"station": "人民广场", "direction": "in", "line": "1"}, ensure_ascii=False)
        command = [sys.executable, "-m", "verifiers", "check", "--jwks", str(jwks_path),
                   "--scene", "transit", "--issuer", app.config["ISSUER"], "--context", context, "-"]
        print("$ python -m verifiers check --jwks jwks.json --scene transit --context '" + context + "' -")
        result = subprocess.run(command, input=token + "\n", text=True, capture_output=True, check=False)
        print(result.stdout, end="")
        print(result.stderr, end="", file=sys.stderr)
        print(f"exit status {result.returncode} (0 accepted, 1 rejected, 2 usage error)")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
