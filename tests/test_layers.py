"""The layers: the modules that say "no Flask" import none, and no module imports itself round a cycle.

The layers themselves (interfaces > app glue > domain > storage and errors,
and ``verifiers`` importing nothing of ``codeservice``) are an import-linter
contract in ``pyproject.toml``, which ``./dev lint`` checks.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# The modules whose docstrings promise no Flask (and the offline library): importing each loads none.
FLASK_FREE = (
    "codeservice.usage",
    "codeservice.scanners",
    "codeservice.scan_store",
    "codeservice.residents",
    "codeservice.revocation",
    "codeservice.issuance",
    "codeservice.identity",
    "codeservice.qr",
    "verifiers",
)


@pytest.mark.parametrize("module", FLASK_FREE)
def test_a_flask_free_module_imports_no_flask(module: str) -> None:
    program = (
        "import json, sys\n"
        f"import {module}\n"
        "print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] == 'flask')))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []
