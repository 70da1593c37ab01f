"""How current a verifier is, and what a sync did: plain records, no behaviour.

:class:`Freshness` is the verifier's own record of when the service last
confirmed its key set and revocation list (and their ``ETag``\\ s, for the
next conditional request); :meth:`OfflineVerifier.set_keys` and
:meth:`OfflineVerifier.set_revocations` are the only ways to change it.
:class:`VerifierStatus` is what :meth:`OfflineVerifier.status` tells an
operator, :class:`SyncReport` what one :meth:`OfflineVerifier.sync` did.
Here, apart, so that the verifier and the sync need not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Freshness:
    """When the service last confirmed the key set and the revocation list; None: never."""

    keys_fetched_at: float | None = None
    """When a sync last confirmed the key set; None: keys given by hand, never confirmed."""
    keys_etag: str | None = None
    """The key set answer's ``ETag``, for the next ``If-None-Match``."""
    revocations_fetched_at: float | None = None
    """When the revocation list was last confirmed (a sync) or set by hand."""
    revocations_issued_at: int | None = None
    """The service's list's ``iat``; None for a list set by hand."""
    revocations_etag: str | None = None
    """The revocation list answer's ``ETag``, for the next ``If-None-Match``."""


@dataclass
class SyncReport:
    """What one :meth:`OfflineVerifier.sync` did; ``errors`` empty when all of it worked."""

    uploaded: int = 0
    """Records the service stored for the first time."""
    duplicates: int = 0
    """Records the service already held (an earlier sync whose answer was lost); acknowledged all the same."""
    batches: int = 0
    """Batches acknowledged (and so removed from the outbox)."""
    set_aside: list[str] = field(default_factory=list)
    """Ids of the records the service refused and this sync set aside (each also a line in ``errors``)."""
    keys_refreshed: bool = False
    """The service confirmed the key set (200, or 304: unchanged); its age restarts from now."""
    keys_added: list[str] = field(default_factory=list)
    keys_removed: list[str] = field(default_factory=list)
    revocations_refreshed: bool = False
    """The service confirmed the revocation list (a verified 200, or 304)."""
    revoked: int | None = None
    """How many code ids the revocation list held after this sync."""
    errors: list[str] = field(default_factory=list)
    keys_age_seconds: float | None = None
    """Seconds since the key set was last confirmed by the service; None: never (keys given by hand)."""
    revocations_age_seconds: float | None = None
    """Seconds since the revocation list was last confirmed; None: never."""
    clock_offset_seconds: float | None = None
    """The service's clock minus this machine's, measured in this sync from the answers' ``Date``
    (good to about a second); None when no answer had one."""
    clock_round_trip: float | None = None
    """The round trip, in seconds, of the answer the clock offset was taken from."""

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class VerifierStatus:
    """How current a verifier's key set and revocation list are (``OfflineVerifier.status()``)."""

    kids: list[str]
    keys_fetched_at: float | None
    keys_age_seconds: float | None
    revocations_fetched_at: float | None
    revocations_age_seconds: float | None
    revocations_issued_at: int | None
    revoked: int | None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def age(since: float | None, now: float) -> float | None:
    """Seconds from ``since`` to ``now`` (never negative); None when ``since`` is."""
    return None if since is None else max(0.0, now - since)
