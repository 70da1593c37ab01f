"""A store that reads ahead is told, before the scene decides, every state key the scene then reads."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import ISSUER, NOW

from verifiers import OfflineVerifier, SceneRegistry
from verifiers.scenes.clinic import ClinicScene
from verifiers.store import MemoryStore


class ReadingAhead(MemoryStore):
    """A memory store that notes what it is told ahead and what the scene then asks."""

    reads_ahead = True

    def __init__(self) -> None:
        super().__init__()
        self.told: list[list[str]] = []
        self.asked: list[str] = []

    def read_ahead(self, keys: list[str]) -> None:
        self.told.append(list(keys))

    def get(self, key: str) -> Any:
        self.asked.append(key)
        return super().get(key)


@pytest.fixture
def store() -> ReadingAhead:
    return ReadingAhead()


@pytest.fixture
def verifier(key_set, store) -> OfflineVerifier:
    return OfflineVerifier(key_set, issuer=ISSUER, store=store, venue_id="hall", device_id="d1")


@pytest.mark.parametrize(
    ("scene", "context", "count"),
    [
        ("clinic", {"department": "dental"}, 1),
        ("venue", {"capacity": 10}, 2),
        ("transit", {"station": "A", "direction": "in"}, 1),
    ],
)
def test_every_key_the_scene_reads_is_told_first(verifier, store, make_token, scene, context, count) -> None:
    decision = verifier.verify(make_token(now=NOW), scene, context, now=NOW)
    assert decision.code == "accepted"
    (told,) = store.told
    assert len(told) == count and store.asked == told
    assert all(key.startswith(f"{scene}@hall:") for key in told)  # the venue's own keys, prefixed


def test_a_refusal_before_the_scene_tells_nothing(verifier, store, make_token) -> None:
    decision = verifier.verify(make_token(now=NOW, iss="urn:other"), "clinic", {"department": "d"}, now=NOW)
    assert decision.code == "issuer_mismatch"
    assert store.told == []


def test_a_scene_whose_keys_cannot_be_listed_still_decides(key_set, make_token, monkeypatch) -> None:
    """A scene's own state_keys failing is its bug: the store is told none, the scene decides as ever."""
    monkeypatch.setattr(ClinicScene, "state_keys", lambda *_: 1 / 0)
    store = ReadingAhead()
    verifier = OfflineVerifier(key_set, issuer=ISSUER, store=store, scenes=SceneRegistry.from_entry_points())
    assert verifier.verify(make_token(now=NOW), "clinic", {"department": "d"}, now=NOW).code == "accepted"
    assert store.told == [[]] and len(store.asked) == 1


def test_an_offline_store_is_not_asked(key_set, make_token) -> None:
    verifier = OfflineVerifier(key_set, issuer=ISSUER)
    assert verifier._reads_ahead is False
    assert verifier.verify(make_token(now=NOW), "clinic", {"department": "d"}, now=NOW).code == "accepted"
