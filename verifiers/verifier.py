"""OfflineVerifier: contract sections 2 and 9 end to end, with a scene and local state.

Each form's own rules are its module's: :func:`verifiers.tokens.check_jws`
for the JWS (section 2, rules 1-4), :func:`verifiers.offline_codes.check_offline_code`
for device and paper codes (section 9, rules 1-5). Every step after them is
this module's, once for all three forms, in the contract's order: the scene
in ``scp``; a paper code only at a staffed scanner; revocation by ``sub``,
or by the credential's id; replay (a JWS by ``jti``, a device code by
``(cti, t)``; a paper code has none); the scene's own rules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Container, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast
from urllib.parse import quote

from .contract import DEFAULT_ISSUER, DEVICE_CODE_VALIDITY_SECONDS, SUPPORTED_ALGORITHMS
from .decision import Decision, new_record_id, usage_record
from .errors import (
    AttendantRequired,
    BadContext,
    ConfigurationError,
    KeySetError,
    Rejection,
    Replayed,
    Revoked,
    UnknownScene,
)
from .keys import KeySet
from .offline_codes import (
    DEFAULT_CREDENTIAL_CACHE_SIZE,
    ONLINE,
    PAPER,
    CredentialCache,
    check_offline_code,
    code_form,
)
from .scenes import Outcome, Scene, SceneRegistry, StateWrite, Visit
from .status import Freshness, SyncReport, VerifierStatus, age
from .store import (
    DecisionStore,
    MemoryStore,
    Outbox,
    ReadAhead,
    SqliteStore,
    Transaction,
    has_outbox,
)
from .sync import DEFAULT_TIMEOUT, MAX_BATCH_SIZE, sync
from .tokens import VerificationRules, VerifiedCode, check_jws, check_scene

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
ACCEPTED_MESSAGE = "accepted"

log = logging.getLogger(__name__)


def local_day(now: float, tz: tzinfo) -> tuple[float, float, str]:
    """The local calendar day around ``now``: (starts at, ends at, YYYY-MM-DD)."""
    local = datetime.fromtimestamp(now, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp(), (midnight + timedelta(days=1)).timestamp(), local.date().isoformat()


def state_prefix(scene_name: str, venue_id: str | None) -> str:
    """The prefix of one scene's state keys at one venue.

    A scene's state is its venue's (contract section 3): a scanner never reads
    or writes another venue's entries, counts, check-ins or trips, whatever
    keys the scene (built in or installed) chooses. The venue is
    percent-encoded, so no venue id can spell another venue's prefix. A
    verifier made without a venue has one unnamed venue's state.
    """
    return f"{scene_name}:" if venue_id is None else f"{scene_name}@{quote(venue_id, safe='')}:"


class _SceneState:
    """One scene's view of the store at one venue: its keys, prefixed by :func:`state_prefix`."""

    __slots__ = ("_prefix", "_transaction")

    def __init__(self, transaction: Transaction, prefix: str) -> None:
        self._transaction = transaction
        self._prefix = prefix

    def get(self, key: str) -> Any:
        return self._transaction.get(self._prefix + key)

    def keys(self, keys: Iterable[str]) -> list[str]:
        return [self._prefix + key for key in keys]

    def scoped(self, writes: Iterable[StateWrite]) -> list[StateWrite]:
        return [StateWrite(self._prefix + w.key, w.value, w.expires_at) for w in writes]


class OfflineVerifier:
    """Verify codes with the issuer's public keys alone; log every decision.

    ``store`` is a path to an SQLite file (state survives restarts and
    crashes), a store object, or None for bounded memory. A store object
    that is only a :class:`~verifiers.store.DecisionStore` (the service's,
    which writes each record straight to its database) gives a verifier
    with no outbox: :meth:`sync` and the outbox's methods raise
    ConfigurationError, and keys and revocations set on it are not kept.

    ``keys`` None: start from the key set the store holds, the last one a
    :meth:`sync` (or :meth:`set_keys`) installed; ConfigurationError when it
    holds none. A verifier reopened on its store this way needs no network
    to go on verifying.

    ``revoked``: the code ids (``sub``) refused as revoked;
    ``revoked_credentials``: the device and paper credentials' ids (``cti``
    in base64url) refused as revoked. Ids to iterate (a list, a set) replace
    the list the store remembers, both parts at once, as
    :meth:`set_revocations` does (a part not given is then empty); an
    object that only answers ``x in revoked`` (the service's live table) is
    asked at each verification and never copied. Both None: the list the
    store remembers, if any.

    ``attended``: True for a staffed scanner (a desk where a person checks
    an ID card), the only kind that accepts paper codes (contract section
    8); a paper code elsewhere is ``attendant_required``.

    ``credential_cache_size``: how many device credentials whose issuer
    signature held are kept, by their bytes, so that the next presentation
    of the same credential skips its decoding, issuer signature and point
    decompression (every rule that can change is still checked: see
    :class:`~verifiers.offline_codes.CredentialCache`); 0: none.
    """

    def __init__(
        self,
        keys: KeySet | None,
        *,
        issuer: str = DEFAULT_ISSUER,
        store: str | Path | DecisionStore | None = None,
        algorithms: Iterable[str] = SUPPORTED_ALGORITHMS,
        leeway: int = 10,
        venue_id: str | None = None,
        device_id: str | None = None,
        scenes: SceneRegistry | None = None,
        scene_config: Mapping[str, Mapping[str, Any]] | None = None,
        revoked: Iterable[str] | Container[str] | None = None,
        revoked_credentials: Iterable[str] | Container[str] | None = None,
        attended: bool = False,
        tz: tzinfo = CHINA_STANDARD_TIME,
        credential_cache_size: int = DEFAULT_CREDENTIAL_CACHE_SIZE,
    ) -> None:
        unsupported = set(algorithms) - set(SUPPORTED_ALGORITHMS)
        if unsupported:
            raise ConfigurationError(f"unsupported algorithms {sorted(unsupported)}; only {SUPPORTED_ALGORITHMS}")
        if type(leeway) is not int or not 0 <= leeway <= 300:
            raise ConfigurationError("leeway must be an integer from 0 to 300 seconds")
        if type(attended) is not bool:
            raise ConfigurationError("attended must be True (a staffed scanner) or False")
        if type(credential_cache_size) is not int or credential_cache_size < 0:
            raise ConfigurationError("credential_cache_size must be an integer, 0 or more (0: no cache)")
        self.credentials = CredentialCache(credential_cache_size)
        """Device credentials already checked, by their bytes (:class:`~verifiers.offline_codes.CredentialCache`)."""
        self.rules = VerificationRules(issuer=issuer, algorithms=frozenset(algorithms), leeway=leeway)
        self.attended = attended
        self._venue_id = venue_id
        self._device_id = device_id
        self._visit_defaults = MappingProxyType({"venue_id": venue_id, "device_id": device_id})
        self.tz = tz
        self.store: DecisionStore = (
            MemoryStore() if store is None else SqliteStore(store) if isinstance(store, (str, Path)) else store
        )
        self.outbox: Outbox | None = self.store if has_outbox(self.store) else None
        """The same object as ``store`` when it keeps an outbox; None for a decision-only store."""
        self._reads_ahead = getattr(self.store, "reads_ahead", False) is True  # the service's database
        self._sync_lock = threading.Lock()
        self.freshness = Freshness()
        """When the service last confirmed the key set and revocation list; changed by set_keys/set_revocations."""
        try:
            self.keys = self._initial_keys(keys)
        except ConfigurationError:
            if self.outbox is not None and isinstance(store, (str, Path)):  # opened here: closed here
                self.outbox.close()
            raise
        self._registry = scenes if scenes is not None else SceneRegistry.from_entry_points()
        self._scene_config = dict(scene_config or {})
        self._scenes: dict[str, tuple[Scene, str]] = {}
        """Each scene made so far, by name, with its state's prefix at this venue."""
        self._day: tuple[float, float, str] = (0.0, 0.0, "")
        self.revoked: Container[str] = frozenset()
        """The revoked residents' code ids (``sub``)."""
        self.revoked_credentials: Container[str] = frozenset()
        """The revoked device and paper credentials' ids (``cti``, base64url)."""
        if isinstance(revoked, Iterable) or isinstance(revoked_credentials, Iterable):
            # given: they replace what the store remembers
            self.set_revocations(
                revoked if isinstance(revoked, Iterable) else (),
                credentials=revoked_credentials if isinstance(revoked_credentials, Iterable) else (),
            )
        elif revoked is None and revoked_credentials is None and self.outbox is not None and (
            saved := self.outbox.get_meta("revoked")
        ):
            self.revoked = frozenset(saved["subs"])
            self.revoked_credentials = frozenset(saved.get("credentials", ()))  # none in a store saved before them
            self.freshness = replace(
                self.freshness,
                revocations_fetched_at=saved.get("fetched_at"),
                revocations_issued_at=saved.get("issued_at"),
                revocations_etag=saved.get("etag"),
            )
        if revoked is not None and not isinstance(revoked, Iterable):  # a live list kept elsewhere (the service's)
            self.revoked = revoked
        if revoked_credentials is not None and not isinstance(revoked_credentials, Iterable):
            self.revoked_credentials = revoked_credentials

    @property
    def venue_id(self) -> str | None:
        """The scanner's venue (fixed: a scene's state is its venue's)."""
        return self._venue_id

    @property
    def device_id(self) -> str | None:
        """The scanner's device."""
        return self._device_id

    @property
    def keys_fetched_at(self) -> float | None:
        """When the service last confirmed the key set (a sync); None: never (keys given by hand)."""
        return self.freshness.keys_fetched_at

    @property
    def revocations_fetched_at(self) -> float | None:
        """When the revocation list was last confirmed (a sync) or set; None: never."""
        return self.freshness.revocations_fetched_at

    @property
    def revocations_issued_at(self) -> int | None:
        """The ``iat`` of the service's revocation list in use; None for a list set by hand."""
        return self.freshness.revocations_issued_at

    # -- public API -------------------------------------------------------

    def verify(
        self, token: object, scene: object, context: object = None, *, now: float | None = None
    ) -> Decision:
        """Apply every rule of contract section 2 (a JWS) or 9 (``RSD1:``, ``RSP1:``); never raises.

        Whatever the token or context, the answer is a decision; its
        ``form`` is the one the token's prefix names.
        """
        now = time.time() if now is None else now
        code: VerifiedCode | None = None
        form = code_form(token)
        try:
            scene_module, prefix = self._scene(scene)
            parsed_context = self._parse_context(scene_module, context)
            # The form's own rules, by the form its prefix names.
            if form == ONLINE:
                code = check_jws(token, self.keys, self.rules, now)
            else:
                code = check_offline_code(token, self.keys, self.rules, now, self.credentials)
            # The steps every form shares, in the contract's order.
            check_scene(code, scene_module.name)
            if form == PAPER and not self.attended:
                raise AttendantRequired()
            if code.sub in self.revoked:
                raise Revoked()
            if code.cti is not None and code.cti in self.revoked_credentials:
                raise Revoked(f"this {form} code's credential has been withdrawn")
            return self._decide(scene_module, prefix, parsed_context, code, now)
        except Rejection as rejection:
            code = code or rejection.verified  # type: ignore[assignment]
            decision = Decision(
                ok=False,
                code=rejection.code,
                scene=scene if type(scene) is str and scene in self._registry else None,
                sub=code.sub if code else None,
                jti=code.jti if code else None,
                exp=code.exp if code else None,
                message=rejection.message,
                detail=rejection.detail,
                record_id=new_record_id(),
                form=form,
            )
            with self.store.transaction(now) as transaction:
                transaction.save(self._record(decision, now))
            return decision

    def set_revocations(
        self,
        subs: Iterable[str],
        *,
        credentials: Iterable[str] = (),
        fetched_at: float | None = None,
        issued_at: int | None = None,
        etag: str | None = None,
    ) -> None:
        """Replace the revocation list (kept in the store, so it survives restarts).

        ``subs``: the revoked residents' code ids; ``credentials``: the
        revoked device and paper credentials' ids (``cti`` in base64url).
        ``issued_at`` and ``etag`` are the service's list's (:meth:`sync`
        passes them); a list set by hand has neither.
        """
        revoked, revoked_credentials = frozenset(subs), frozenset(credentials)
        fetched_at = fetched_at or time.time()
        if self.outbox is not None:
            self.outbox.set_meta(
                "revoked",
                {
                    "subs": sorted(revoked),
                    "credentials": sorted(revoked_credentials),
                    "fetched_at": fetched_at,
                    "issued_at": issued_at,
                    "etag": etag,
                },
            )
        self.revoked, self.revoked_credentials = revoked, revoked_credentials
        self.freshness = replace(
            self.freshness, revocations_fetched_at=fetched_at, revocations_issued_at=issued_at, revocations_etag=etag
        )

    def set_keys(self, keys: KeySet, *, fetched_at: float | None = None, etag: str | None = None) -> None:
        """Replace the key set; kept in the store, so a verifier reopened with ``keys=None`` starts from it.

        ``fetched_at`` and ``etag`` are the service's answer's (:meth:`sync`
        passes them); keys set by hand have no age.
        """
        if self.outbox is not None:
            self.outbox.set_meta("keys", {"jwks": keys.to_jwks(), "fetched_at": fetched_at, "etag": etag})
        self.keys = keys
        self.freshness = replace(self.freshness, keys_fetched_at=fetched_at, keys_etag=etag)

    def sync(
        self,
        url: str,
        key: str,
        *,
        batch_size: int = MAX_BATCH_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        now: float | None = None,
    ) -> SyncReport:
        """Refresh the key set and the revocation list from the service at ``url``, then upload the outbox.

        ``key`` is the scanner's key; ``batch_size`` records (1 to 1000) go in
        each upload; ``timeout`` is in seconds, per request. Never raises for
        the network or the service's answers: problems are in the report's
        ``errors``, and what was not acknowledged waits for the next sync
        (see :mod:`verifiers.sync`). ConfigurationError for bad arguments,
        and for a verifier whose store keeps no outbox.
        """
        with self._sync_lock:  # two syncs at once would send the same batches twice
            return sync(self, url, key, batch_size=batch_size, timeout=timeout, now=now)

    def status(self, *, now: float | None = None) -> VerifierStatus:
        """How old the key set and the revocation list are (None: never confirmed by the service)."""
        now = time.time() if now is None else now
        revoked, freshness = self.revoked, self.freshness
        return VerifierStatus(
            kids=sorted(self.keys),
            keys_fetched_at=freshness.keys_fetched_at,
            keys_age_seconds=age(freshness.keys_fetched_at, now),
            revocations_fetched_at=freshness.revocations_fetched_at,
            revocations_age_seconds=age(freshness.revocations_fetched_at, now),
            revocations_issued_at=freshness.revocations_issued_at,
            revoked=len(revoked) if isinstance(revoked, frozenset) else None,
        )

    def pending_records(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Usage records not yet acknowledged by the service, oldest first."""
        return self._outbox("pending_records").pending_records(limit)

    def set_aside_records(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Records the service refused at a sync, each as ``{"record", "reason", "set_aside_at"}``, oldest first.

        They no longer block the outbox; they are kept until :meth:`requeue_set_aside`.
        """
        return self._outbox("set_aside_records").set_aside_records(limit)

    def requeue_set_aside(self) -> int:
        """Put every set-aside record back into the outbox (once their cause is fixed); how many."""
        return self._outbox("requeue_set_aside").requeue_set_aside()

    def close(self) -> None:
        """Close the store (a decision-only store is its owner's to close)."""
        if self.outbox is not None:
            self.outbox.close()

    def __enter__(self) -> OfflineVerifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- steps ------------------------------------------------------------

    def _outbox(self, method: str) -> Outbox:
        if self.outbox is None:
            raise ConfigurationError(
                f"{method}: this verifier's store ({type(self.store).__name__}) keeps no outbox;"
                " give the verifier a path, a MemoryStore or an SqliteStore"
            )
        return self.outbox

    def _initial_keys(self, keys: KeySet | None) -> KeySet:
        """``keys``, or the store's; the store's age and ETag hold only for the very same keys."""
        saved = self.outbox.get_meta("keys") if self.outbox is not None else None
        if keys is None:
            if not saved:
                raise ConfigurationError(
                    "no key set: pass one (KeySet.from_jwks(...)), or sync a verifier on this store first"
                )
            try:
                keys = KeySet.from_jwks(saved["jwks"])
            except (KeySetError, KeyError, TypeError) as exc:
                raise ConfigurationError(f"the key set saved in the store cannot be used: {exc}") from exc
        elif not saved or saved.get("jwks") != keys.to_jwks():
            return keys
        self.freshness = replace(self.freshness, keys_fetched_at=saved.get("fetched_at"), keys_etag=saved.get("etag"))
        return keys

    def _scene(self, name: object) -> tuple[Scene, str]:
        """The scene called ``name`` (made once per verifier) and its state's prefix at this venue."""
        made = self._scenes.get(name) if type(name) is str else None
        if made is not None:
            return made
        if type(name) is not str or name not in self._registry:
            raise UnknownScene(f"no installed scene is called {name!r}"[:200])
        scene = self._registry.create(name, self._scene_config.get(name))
        made = self._scenes[name] = (scene, state_prefix(name, self._venue_id))
        return made

    def _parse_context(self, scene: Scene, context: object) -> Any:
        if context is None:
            context = {}
        if type(context) is not dict:
            raise BadContext("the context must be a JSON object")
        try:
            return scene.parse_context(context, self._visit_defaults)
        except Rejection:
            raise
        except Exception as exc:  # a scene's bug must not crash a gate
            log.exception("scene %s failed to parse its context", scene.name)
            raise BadContext(f"the {scene.name} scene could not read the context") from exc

    def _decide(self, scene: Scene, prefix: str, context: Any, code: VerifiedCode, now: float) -> Decision:
        """Replay, the scene's rules and the usage record, in one store transaction.

        (Section 2's rules 7 and 8, section 9's 8 and 9.) A JWS is claimed
        by its ``jti``, a device code by ``(cti, t)``, which is its ``jti``
        ``cti-t``: a second signature over the same presentation is a replay
        all the same. A paper code is shown again and again and claims
        nothing; its scene's rules (one entry a day, passback) still hold.
        """
        with self.store.transaction(now) as transaction:
            replay_key = None if code.form == PAPER else code.jti
            jti_expires_at = 0
            if replay_key is not None:
                # Until it can no longer be presented: a device code 60 s from t, within its credential's life.
                valid_until = code.exp if code.t is None else min(code.t + DEVICE_CODE_VALIDITY_SECONDS, code.exp)
                jti_expires_at = valid_until + self.rules.leeway + 1
                if not transaction.claim_jti(replay_key, jti_expires_at):
                    raise Replayed()
            record_id = new_record_id()
            state = _SceneState(transaction, prefix)
            visit = self._visit(code, now, record_id)
            if self._reads_ahead:  # the claim and every key the scene reads, at once
                try:
                    keys = scene.state_keys(visit, context)
                except Exception:  # a scene's bug: its decide() meets it again, and is handled there
                    keys = []
                cast(ReadAhead, transaction).read_ahead(state.keys(keys))
            outcome = self._scene_outcome(scene, visit, context, state)
            decision = Decision(
                ok=True,
                code="accepted",
                scene=scene.name,
                sub=code.sub,
                jti=code.jti,
                exp=code.exp,
                message=ACCEPTED_MESSAGE,
                detail=outcome.detail,
                record_id=record_id,
                form=code.form,
                check_id=code.check_id,
            )
            transaction.save(
                self._record(decision, now),
                jti=replay_key,
                jti_expires_at=jti_expires_at,
                writes=state.scoped(outcome.writes),
            )
        return decision

    @staticmethod
    def _scene_outcome(scene: Scene, visit: Visit, context: Any, state: _SceneState) -> Outcome:
        try:
            return scene.decide(visit, context, state)
        except Rejection:
            raise
        except Exception as exc:
            log.exception("scene %s failed to decide", scene.name)
            raise BadContext(f"the {scene.name} scene could not apply its rules") from exc

    def _visit(self, code: VerifiedCode, now: float, record_id: str) -> Visit:
        day = self._day
        if not day[0] <= now < day[1]:
            day = self._day = local_day(now, self.tz)
        return Visit(
            sub=code.sub,
            jti=code.jti,
            category=code.category,
            now=now,
            day=day[2],
            day_ends_at=int(day[1]),
            venue_id=self._venue_id,
            device_id=self._device_id,
            record_id=record_id,
        )

    def _record(self, decision: Decision, now: float) -> dict[str, Any]:
        return usage_record(decision, venue_id=self._venue_id, device_id=self._device_id, decided_at=now)
