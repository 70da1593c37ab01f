"""The verifier's local store: what survives a restart or ``kill -9``, and the bounds.

Contract section 8: ``store="scanner.db"`` keeps local state and the usage
outbox (section 5) in a file; ``store=None`` keeps them in bounded memory.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from contextlib import AbstractContextManager
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
from helpers import ISSUER, NOW

from verifiers import (
    ConfigurationError,
    Freshness,
    OfflineVerifier,
    Outbox,
    StoreError,
    Transaction,
)
from verifiers.store import MemoryStore, SqliteStore, has_outbox

ALICE = "q1w2e3r4t5y6u7i8"  # the token factory's default sub
BOB = "Zq3xT0bL9mWc2YhE"
CAROL = "m0Pn7VcX2bZk5LwR"
ENTRY = {"station": "A", "direction": "in"}
EXIT = {"station": "B", "direction": "out"}


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "scanner.db"


@pytest.fixture
def open_verifier(key_set):
    """``open_verifier(store)``: a verifier at museum-1/gate-1, closed at teardown."""
    opened: list[OfflineVerifier] = []

    def open_(store: Any, **options: Any) -> OfflineVerifier:
        options = {"venue_id": "museum-1", "device_id": "gate-1", **options}
        verifier = OfflineVerifier(key_set, issuer=ISSUER, store=store, **options)
        opened.append(verifier)
        return verifier

    yield open_
    for verifier in opened:
        verifier.close()


def record_ids(verifier: OfflineVerifier, limit: int = 100_000) -> list[str]:
    return [record["id"] for record in verifier.pending_records(limit)]


# -- SQLite: a reopened verifier remembers -------------------------------------


def test_store_path_may_be_a_string(open_verifier, store_path, make_token):
    verifier = open_verifier(str(store_path))

    assert isinstance(verifier.store, SqliteStore)
    assert verifier.verify(make_token(), "transit", ENTRY, now=NOW).code == "accepted"
    assert store_path.exists()


def test_reopened_verifier_remembers_accepted_codes(open_verifier, store_path, make_token):
    token = make_token()
    first = open_verifier(store_path)
    accepted = first.verify(token, "transit", ENTRY, now=NOW)
    first.close()

    again = open_verifier(store_path).verify(token, "transit", ENTRY, now=NOW + 5)

    assert (accepted.code, again.code) == ("accepted", "replayed")
    assert again.jti == accepted.jti


def test_reopened_verifier_keeps_scene_state(open_verifier, store_path, make_token):
    first = open_verifier(store_path)
    entry = first.verify(make_token(), "transit", ENTRY, now=NOW)
    entered = first.verify(make_token(), "venue", {"capacity": 2}, now=NOW)
    first.close()

    reopened = open_verifier(store_path)
    passback = reopened.verify(make_token(now=NOW + 60), "transit", ENTRY, now=NOW + 60)
    exit_ = reopened.verify(make_token(now=NOW + 120), "transit", EXIT, now=NOW + 120)
    already = reopened.verify(make_token(now=NOW + 180), "venue", {"capacity": 2}, now=NOW + 180)
    bob = reopened.verify(make_token(now=NOW + 240, sub=BOB), "venue", {"capacity": 2}, now=NOW + 240)
    third = reopened.verify(make_token(now=NOW + 300, sub=CAROL), "venue", {"capacity": 2}, now=NOW + 300)

    assert (entry.code, entered.code) == ("accepted", "accepted")
    assert [passback.code, exit_.code] == ["passback", "accepted"]
    assert exit_.detail["trip_id"] == entry.record_id
    assert [already.code, bob.code, third.code] == ["already_entered", "accepted", "capacity_full"]


def test_reopened_verifier_keeps_every_pending_record(open_verifier, store_path, make_token):
    first = open_verifier(store_path)
    decisions = [
        first.verify(make_token(), "transit", ENTRY, now=NOW),
        first.verify(make_token(), "transit", ENTRY, now=NOW + 1),  # passback
        first.verify(make_token(), "transit", {"direction": "sideways"}, now=NOW + 2),
        first.verify(make_token(), "library", {}, now=NOW + 3),
        first.verify("not-a-code", "venue", {}, now=NOW + 4),
        first.verify(make_token(now=NOW + 5), "clinic", {"department": "牙科"}, now=NOW + 5),
    ]
    before = first.pending_records()
    first.close()

    after = open_verifier(store_path).pending_records()

    assert [d.code for d in decisions] == [
        "accepted",
        "passback",
        "bad_context",
        "unknown_scene",
        "malformed",
        "accepted",
    ]
    assert [record["id"] for record in after] == [d.record_id for d in decisions]
    assert after == before
    for decision, record in zip(decisions, after, strict=True):
        assert (record["ok"], record["code"], record["scene"]) == (decision.ok, decision.code, decision.scene)
        assert (record["sub"], record["jti"], record["detail"]) == (decision.sub, decision.jti, decision.detail)
        assert (record["venue_id"], record["device_id"]) == ("museum-1", "gate-1")
    assert after[0]["decided_at"] == "2026-11-18T11:06:40.000Z"  # NOW, RFC 3339 UTC
    assert after[-1]["detail"] == {"department": "牙科", "appointment_id": None}


def test_records_come_out_oldest_first(open_verifier, store_path, make_token):
    verifier = open_verifier(store_path)
    ids = [verifier.verify(make_token(now=NOW + i), "transit", ENTRY, now=NOW + i).record_id for i in range(5)]

    assert record_ids(verifier) == ids
    assert record_ids(verifier, limit=2) == ids[:2]


def test_mark_synced_removes_records(open_verifier, store_path, make_token):
    verifier = open_verifier(store_path, venue_id=None)
    ids = [
        verifier.verify(make_token(now=NOW + i), "venue", {"venue_id": f"v{i}"}, now=NOW + i).record_id
        for i in range(4)
    ]

    verifier.store.mark_synced([ids[0], ids[2], "00000000-0000-0000-0000-000000000000"])
    verifier.store.mark_synced([ids[0]])  # acknowledging twice is harmless
    assert record_ids(verifier) == [ids[1], ids[3]]
    verifier.close()

    assert record_ids(open_verifier(store_path, venue_id=None)) == [ids[1], ids[3]]


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_record_set_aside_leaves_the_outbox_and_can_be_requeued(open_verifier, store_path, make_token, kind):
    reopen = (lambda: open_verifier(store_path, venue_id=None)) if kind == "sqlite" else None
    verifier = open_verifier(store_path if kind == "sqlite" else None, venue_id=None)
    ids = [
        verifier.verify(make_token(now=NOW + i), "venue", {"venue_id": f"v{i}"}, now=NOW + i).record_id
        for i in range(3)
    ]
    record = verifier.pending_records()[1]

    verifier.store.set_aside(ids[1], "scene: not one this key names", NOW + 10)
    verifier.store.set_aside("00000000-0000-0000-0000-000000000000", "not in the outbox: nothing", NOW + 10)
    assert record_ids(verifier) == [ids[0], ids[2]]
    assert verifier.set_aside_records() == [
        {"record": record, "reason": "scene: not one this key names", "set_aside_at": NOW + 10}
    ]
    if reopen is not None:  # kept on disk
        verifier.close()
        verifier = reopen()
        assert record_ids(verifier) == [ids[0], ids[2]]
        assert [entry["record"] for entry in verifier.set_aside_records()] == [record]

    assert verifier.requeue_set_aside() == 1
    assert record_ids(verifier) == [ids[0], ids[2], ids[1]]
    assert verifier.set_aside_records() == []
    assert verifier.requeue_set_aside() == 0


def test_revocations_survive_reopen(open_verifier, store_path, make_token):
    first = open_verifier(store_path)
    first.set_revocations([BOB], fetched_at=NOW)
    first.close()

    reopened = open_verifier(store_path)
    bob = reopened.verify(make_token(sub=BOB), "transit", ENTRY, now=NOW)
    alice = reopened.verify(make_token(), "transit", ENTRY, now=NOW)
    reopened.set_revocations([])
    reopened.close()

    bob_later = open_verifier(store_path).verify(make_token(sub=BOB, now=NOW + 60), "transit", ENTRY, now=NOW + 60)

    assert reopened.revoked == frozenset()
    assert (bob.code, alice.code, bob_later.code) == ("revoked", "accepted", "accepted")


# -- kill -9 -------------------------------------------------------------------


CHILD = textwrap.dedent(
    """
    import json, sys
    from verifiers import KeySet, OfflineVerifier

    jwks_path, tokens_path, store_path, now = sys.argv[1:5]
    with open(tokens_path) as f:
        tokens = json.load(f)
    verifier = OfflineVerifier(
        KeySet.from_jwks(jwks_path), issuer=%r, store=store_path, venue_id="museum-1", device_id="gate-1"
    )
    for token in tokens:
        decision = verifier.verify(token, "transit", {"station": "A", "direction": "in"}, now=int(now))
        print(decision.record_id, decision.jti, decision.code, flush=True)
    import time
    time.sleep(600)  # on a loaded machine the parent may read slowly: wait for the kill
    """  # noqa: UP031 - the child's source is full of braces
    % ISSUER
)


def test_kill_9_loses_nothing_acknowledged(open_verifier, store_path, tmp_path, jwks, make_token):
    """A verifier killed with SIGKILL mid-run: every decision it returned is on disk."""
    total, kill_after = 3000, 200
    tokens = [make_token(sub=f"kill{i:012d}") for i in range(total)]
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    (tmp_path / "tokens.json").write_text(json.dumps(tokens))
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, "jwks.json", "tokens.json", str(store_path), str(NOW)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            for line in child.stdout:
                lines.append(line)
                if len(lines) == kill_after:
                    child.send_signal(signal.SIGKILL)
                    break
            # Read the rest through the same buffered file: lines it read ahead past
            # the 200th are in its buffer, and communicate() would bypass them.
            rest = child.stdout.read()
            errors = child.stderr.read()
        finally:
            child.kill()  # a no-op once it is dead; the with block waits for it
    lines.extend(rest.splitlines(keepends=True))
    printed = [line.split() for line in lines if line.endswith("\n")]

    assert child.returncode == -signal.SIGKILL, errors
    # Usually mid-run; on a loaded machine the child may have finished first.
    assert kill_after <= len(printed) <= total
    assert all(code == "accepted" for _, _, code in printed)

    reopened = open_verifier(store_path)
    pending = reopened.pending_records(limit=total + 1)
    found = {record["id"] for record in pending}
    missing = [record_id for record_id, _, _ in printed if record_id not in found]
    print(f"kill -9: {len(printed)} decisions printed, {len(pending)} records found, {len(missing)} missing")

    assert missing == []
    # At most the one decision committed but not yet printed when the signal came.
    assert len(printed) <= len(pending) <= len(printed) + 1
    assert all(record["code"] == "accepted" for record in pending)
    assert all(reopened.store.jti_seen(jti) for _, jti, _ in printed)
    for (_, jti, _), token in list(zip(printed, tokens, strict=False))[::10]:  # the child verified them in order
        assert reopened.verify(token, "transit", ENTRY, now=NOW + 1).code == "replayed", jti
    # The scene state was written with the same transaction: the trips are open.
    last_sub = f"kill{len(printed) - 1:012d}"
    assert reopened.verify(make_token(sub=last_sub), "transit", ENTRY, now=NOW + 2).code == "passback"


# -- memory: bounded -------------------------------------------------------------


def test_memory_store_is_the_default(open_verifier, make_token):
    first, second = open_verifier(None), open_verifier(None)
    token = make_token()

    assert isinstance(first.store, MemoryStore)
    assert first.verify(token, "transit", ENTRY, now=NOW).code == "accepted"
    assert second.verify(token, "transit", ENTRY, now=NOW).code == "accepted"  # nothing shared


def test_memory_store_evicts_the_oldest_expiring_jti_first(open_verifier, make_token):
    store = MemoryStore(max_jtis=100)
    verifier = open_verifier(store, venue_id=None)
    # Lifetimes 200..299 s, presented out of order: the 200 s one sits in the middle.
    lifetimes = list(range(250, 300)) + list(range(200, 250))
    tokens = {life: make_token(exp=NOW + life) for life in lifetimes}
    decisions = {life: verifier.verify(tokens[life], "venue", {"venue_id": f"v{life}"}, now=NOW) for life in lifetimes}
    assert all(decision.code == "accepted" for decision in decisions.values())
    assert all(store.jti_seen(decision.jti) for decision in decisions.values())

    newest = verifier.verify(make_token(exp=NOW + 300), "venue", {"venue_id": "v300"}, now=NOW)

    assert newest.code == "accepted"
    assert not store.jti_seen(decisions[200].jti)
    assert all(store.jti_seen(decisions[life].jti) for life in lifetimes if life != 200)
    assert store.jti_seen(newest.jti)
    assert verifier.verify(tokens[201], "venue", {"venue_id": "w"}, now=NOW).code == "replayed"
    # The price of the bound: a forgotten code still within its lifetime is taken again.
    assert verifier.verify(tokens[200], "venue", {"venue_id": "w"}, now=NOW).code == "accepted"


def test_memory_store_forgets_expired_jtis_before_unexpired_ones(open_verifier, make_token):
    store = MemoryStore(max_jtis=3)
    verifier = open_verifier(store, venue_id=None)
    long_lived = verifier.verify(make_token(exp=NOW + 300), "venue", {"venue_id": "a"}, now=NOW)
    short_lived = verifier.verify(make_token(exp=NOW + 15), "venue", {"venue_id": "b"}, now=NOW)
    middle = verifier.verify(make_token(exp=NOW + 200), "venue", {"venue_id": "c"}, now=NOW)

    later = NOW + 100  # past short_lived's exp + leeway; the others still valid
    fresh = verifier.verify(make_token(now=later), "venue", {"venue_id": "d"}, now=later)

    assert [d.code for d in (long_lived, short_lived, middle, fresh)] == ["accepted"] * 4
    assert not store.jti_seen(short_lived.jti)
    assert all(store.jti_seen(d.jti) for d in (long_lived, middle, fresh))


def test_memory_store_forgets_expired_jtis_even_below_the_bound(open_verifier, make_token):
    store = MemoryStore(max_jtis=100)
    verifier = open_verifier(store, venue_id=None)
    short_lived = verifier.verify(make_token(exp=NOW + 15), "venue", {"venue_id": "a"}, now=NOW)
    long_lived = verifier.verify(make_token(exp=NOW + 300), "venue", {"venue_id": "b"}, now=NOW)
    verifier.verify(make_token(now=NOW + 100), "venue", {"venue_id": "c"}, now=NOW + 100)

    assert not store.jti_seen(short_lived.jti)
    assert store.jti_seen(long_lived.jti)


def test_memory_outbox_is_bounded_and_counts_what_it_dropped(open_verifier, make_token):
    store = MemoryStore(max_records=3)
    verifier = open_verifier(store)
    ids = [verifier.verify(make_token(now=NOW + i), "transit", ENTRY, now=NOW + i).record_id for i in range(5)]

    assert record_ids(verifier) == ids[2:]
    assert store.dropped_records == 2
    store.mark_synced(ids[2:4])
    assert record_ids(verifier) == ids[4:]
    assert store.dropped_records == 2


# -- a store that cannot be used -------------------------------------------------


def test_garbage_store_file_is_a_store_error_naming_it(key_set, store_path):
    store_path.write_bytes(b"\x00\xffnot a database at all\n" * 400)

    with pytest.raises(StoreError) as raised:
        OfflineVerifier(key_set, issuer=ISSUER, store=store_path)

    assert str(store_path) in str(raised.value)


def test_corrupt_pages_in_a_real_store_are_a_store_error(open_verifier, key_set, store_path, make_token):
    verifier = open_verifier(store_path, venue_id=None)
    for i in range(300):
        verifier.verify(make_token(), "venue", {"venue_id": f"venue-{i}"}, now=NOW)
    verifier.close()
    data = bytearray(store_path.read_bytes())
    assert len(data) > 3 * 4096
    data[4096:] = bytes((i * 151 + 7) % 256 for i in range(len(data) - 4096))
    store_path.write_bytes(bytes(data))

    with pytest.raises(StoreError) as raised:
        OfflineVerifier(key_set, issuer=ISSUER, store=store_path)

    assert str(store_path) in str(raised.value)


def test_store_in_a_missing_directory_is_a_store_error(key_set, tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "scanner.db"

    with pytest.raises(StoreError) as raised:
        OfflineVerifier(key_set, issuer=ISSUER, store=path)

    assert str(path) in str(raised.value)


# -- the SQLite store's journal ----------------------------------------------------


def test_decisions_wait_in_the_journal_until_a_batch_commits(open_verifier, store_path, make_token):
    verifier = open_verifier(store_path)
    verifier.verify(make_token(), "transit", ENTRY, now=NOW)

    journal = store_path.with_name(store_path.name + ".journal")
    assert journal.read_bytes().count(b"\n") == 1  # written before verify returned
    assert len(verifier.pending_records()) == 1  # reading the outbox commits the batch first
    assert journal.read_bytes() == b""


def test_a_replayed_journal_adds_nothing_twice_and_a_torn_line_is_ignored(
    open_verifier, store_path, make_token, key_set
):
    token = make_token()
    first = open_verifier(store_path)
    accepted = first.verify(token, "transit", ENTRY, now=NOW)
    journal = store_path.with_name(store_path.name + ".journal")
    line = journal.read_bytes()
    first.close()  # commits the batch and empties the journal
    # As if the process had died after committing but before emptying the
    # journal, and a power cut had torn a second line half-way.
    journal.write_bytes(line + line[: len(line) // 2])

    reopened = open_verifier(store_path)
    assert [r["id"] for r in reopened.pending_records()] == [accepted.record_id]
    assert reopened.verify(token, "transit", ENTRY, now=NOW + 1).code == "replayed"


# -- a store with the decision half only (the service's) ---------------------------


class DecisionsOnly:
    """A DecisionStore and nothing more: the shape of the service's DatabaseStore."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def transaction(self, now: float) -> AbstractContextManager[Transaction]:
        return self.inner.transaction(now)


def test_each_store_says_which_halves_it_keeps(store_path):
    sqlite = SqliteStore(store_path)
    try:
        assert has_outbox(MemoryStore()) and has_outbox(sqlite)
        assert isinstance(sqlite, Outbox)
    finally:
        sqlite.close()
    assert not has_outbox(DecisionsOnly())


def test_a_decision_only_store_verifies_and_has_no_outbox(open_verifier, key_set, make_token):
    store = DecisionsOnly()
    verifier = open_verifier(store)
    token = make_token()

    assert verifier.outbox is None
    assert verifier.verify(token, "transit", ENTRY, now=NOW).code == "accepted"
    assert verifier.verify(token, "transit", ENTRY, now=NOW + 1).code == "replayed"
    assert len(store.inner.pending_records(10)) == 2  # written by the store's own transaction
    for call in (
        verifier.pending_records,
        verifier.set_aside_records,
        verifier.requeue_set_aside,
        lambda: verifier.sync("http://127.0.0.1:1", "csk_key"),
    ):
        with pytest.raises(ConfigurationError, match="keeps no outbox"):
            call()
    verifier.set_keys(key_set, fetched_at=NOW, etag='"k1"')  # kept in memory only: nowhere else to keep it
    verifier.set_revocations([ALICE], fetched_at=NOW)
    assert verifier.freshness.keys_etag == '"k1"'
    assert verifier.verify(make_token(now=NOW + 2), "transit", ENTRY, now=NOW + 2).code == "revoked"
    assert store.inner.get_meta("keys") is None
    verifier.close()  # the store is its owner's: nothing to close here


def test_a_decision_only_store_needs_the_keys_given(key_set):
    with pytest.raises(ConfigurationError, match="no key set"):
        OfflineVerifier(None, issuer=ISSUER, store=DecisionsOnly())


# -- freshness --------------------------------------------------------------------


def test_freshness_changes_only_through_set_keys_and_set_revocations(open_verifier, store_path, key_set):
    verifier = open_verifier(store_path)
    assert verifier.freshness == Freshness()  # keys given by hand: never confirmed

    verifier.set_keys(key_set, fetched_at=NOW, etag='"k1"')
    verifier.set_revocations([BOB], fetched_at=NOW + 1, issued_at=int(NOW) - 60, etag='"r1"')
    expected = Freshness(NOW, '"k1"', NOW + 1, int(NOW) - 60, '"r1"')

    assert verifier.freshness == expected
    assert (verifier.keys_fetched_at, verifier.revocations_fetched_at) == (NOW, NOW + 1)
    assert verifier.revocations_issued_at == int(NOW) - 60
    with pytest.raises(FrozenInstanceError):
        verifier.freshness.keys_etag = None
    verifier.close()
    assert open_verifier(store_path).freshness == expected  # kept in the store, for the very same keys


# -- one parameter for the revocation list ------------------------------------------


class LiveRevocations:
    """Answers ``sub in revoked`` only, like the service's table: asked each time, never copied."""

    def __init__(self) -> None:
        self.subs: set[str] = set()
        self.asked = 0

    def __contains__(self, sub: object) -> bool:
        self.asked += 1
        return sub in self.subs


def test_revoked_takes_a_list_to_copy_or_a_lookup_to_ask(open_verifier, store_path, make_token):
    live = LiveRevocations()
    asking = open_verifier(None, revoked=live)
    assert asking.verify(make_token(), "transit", ENTRY, now=NOW).code == "accepted"
    live.subs.add(ALICE)
    assert asking.verify(make_token(now=NOW + 1), "transit", ENTRY, now=NOW + 1).code == "revoked"
    assert live.asked == 2
    assert asking.status().revoked is None  # a lookup has no length to report

    listed = [BOB]
    copying = open_verifier(store_path, revoked=listed)
    listed.append(ALICE)  # too late: the list was copied
    assert copying.revoked == frozenset([BOB])
    assert copying.status().revoked == 1
    assert copying.verify(make_token(), "transit", ENTRY, now=NOW).code == "accepted"
