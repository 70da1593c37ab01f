"""Docs that tests keep honest: the README names every decision code the verifier can give, and no other."""

from __future__ import annotations

import re

from helpers import PROJECT

from verifiers import SceneRegistry

README = PROJECT / "README.md"


def readme_decision_codes() -> list[str]:
    """The codes in the README's sentence on what ``verify`` returns: "with a stable code (...)"."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"with a stable code \((.*?)\)\. Set-up", text, re.DOTALL)
    assert match, "the README's list of decision codes has moved: update this test"
    return re.findall(r"`([a-z_]+)`", match.group(1))


def test_the_readme_lists_every_decision_code_once() -> None:
    listed = readme_decision_codes()
    assert len(listed) == len(set(listed)), listed
    assert listed == ["accepted", *SceneRegistry.from_entry_points().rejection_codes()]
