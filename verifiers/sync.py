"""A verifier's sync with the service: refresh keys and revocations, upload the outbox.

:meth:`OfflineVerifier.sync` runs, in this order (the revocation list is
signed by the issuer's current key, so the key set comes first):

1. the key set from ``{url}/.well-known/jwks.json``, with ``If-None-Match``;
2. the revocation list from ``{url}/api/v1/revocations`` (a signed JWS,
   checked by :func:`~verifiers.revocations.verify_revocation_list`);
3. the usage outbox, oldest first, in batches to ``POST {url}/api/v1/usage``
   with ``Authorization: Bearer <scanner key>``. A batch leaves the outbox
   only once the service has answered it with 200 and counted every record
   (newly accepted or already held: the upload is idempotent by record id).
   A record the service refuses (400 ``invalid_usage_record`` naming it: a
   scene the key no longer names, a time more than 400 days back) would hold
   up every record after it for good: it is set aside instead, kept with the
   service's reason (:meth:`OfflineVerifier.set_aside_records`, back into the
   outbox with :meth:`OfflineVerifier.requeue_set_aside`), and the upload
   goes on. At most :data:`MAX_SET_ASIDE` per sync: past that, something is
   wrong with the scanner as a whole (its clock, its key), and the upload
   stops there instead of setting everything aside.

Every upload request carries the verifier's health, for the operators'
console: ``Codeservice-Verifier-Status: keys-age=120, revocations-age=30,
clock-offset=-2, pending=5``, an RFC 8941 dictionary of integers (seconds;
``clock-offset`` is the service's clock minus this machine's, measured in
this sync from the answers' ``Date`` header, good to about a second;
``pending`` the outbox's records before that request; a member that is not
known is left out). A sync with an empty outbox still sends one upload, an
empty batch, so the service hears from every verifier at every sync. The
offset is also kept in the store (``clock`` meta) and in
:attr:`SyncReport.clock_offset_seconds`.

Nothing about the network raises (the service down, a connection cut, a
timeout, a 5xx, an answer that is not what it should be): each problem is a
line in :attr:`SyncReport.errors`, and whatever was not acknowledged is still
there for the next ``sync()``. A batch the service stored without the
acknowledgement arriving is sent again and counted as duplicates, never
stored twice. A key set or revocation list that cannot be fetched or checked
leaves the last good one in place: a verifier offline for a week still
verifies with the keys it had, and :meth:`OfflineVerifier.status` says how
old they are.

Only the standard library speaks HTTP here (``urllib``): https, or plain
http to a loopback address; redirects are not followed.
"""

from __future__ import annotations

import datetime
import email.utils
import http.client
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any, Protocol

from .errors import ConfigurationError, KeySetError
from .jose import JoseFormatError, json_object
from .keys import MAX_JWKS_BYTES, KeySet, check_url, json_from_bytes, opener
from .revocations import (
    MAX_REVOCATION_LIST_BYTES,
    RevocationListError,
    verify_revocation_list,
)
from .status import Freshness, SyncReport, age
from .store import Outbox
from .tokens import VerificationRules

log = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
REVOCATIONS_PATH = "/api/v1/revocations"
USAGE_PATH = "/api/v1/usage"
MAX_BATCH_SIZE = 1000
"""The most records ``POST /api/v1/usage`` takes at once (contract section 4)."""
MAX_SET_ASIDE = 10
"""The most records one sync sets aside (see the module's docstring)."""
DEFAULT_TIMEOUT = 10
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "verifiers-sync/1"
STATUS_HEADER = "Codeservice-Verifier-Status"
"""The verifier's health, sent with every usage upload (:func:`status_header`)."""
CLOCK_META = "clock"
"""The store's record of the last clock measure: ``{"offset": seconds, "measured_at": epoch}``."""
_RECORD_FIELD = re.compile(r"records\[(\d+)\]")


class SyncableVerifier(Protocol):
    """What a sync needs from a verifier (:class:`~verifiers.OfflineVerifier` is one).

    It reads the verifier's key set, rules, revocation list, freshness and
    outbox, and changes them only through ``set_keys`` and ``set_revocations``.
    """

    @property
    def keys(self) -> KeySet: ...

    @property
    def rules(self) -> VerificationRules: ...

    @property
    def revoked(self) -> Container[str]: ...

    @property
    def revoked_credentials(self) -> Container[str]: ...

    @property
    def freshness(self) -> Freshness: ...

    @property
    def outbox(self) -> Outbox | None: ...

    def set_keys(self, keys: KeySet, *, fetched_at: float | None = None, etag: str | None = None) -> None: ...

    def set_revocations(
        self,
        subs: Iterable[str],
        *,
        credentials: Iterable[str] = (),
        fetched_at: float | None = None,
        issued_at: int | None = None,
        etag: str | None = None,
    ) -> None: ...


class _Unreachable(Exception):
    """The request got no HTTP answer (refused, reset, timed out, unreadable)."""


@dataclass
class _Answer:
    status: int
    headers: Mapping[str, str] | Message[str, str]
    body: bytes
    sent_at: float = 0.0
    """Local time when the request went out, and when the answer's headers arrived: the clock's measure."""
    received_at: float = 0.0


def _exchange(
    url: str,
    *,
    timeout: float,
    limit: int,
    headers: Mapping[str, str],
    body: bytes | None = None,
) -> _Answer:
    """One HTTP request; the answer whatever its status, or _Unreachable."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST" if body is not None else "GET",
        headers={"User-Agent": USER_AGENT, **headers},
    )
    sent_at = time.time()
    try:
        try:
            with opener(url).open(request, timeout=timeout) as response:
                received_at = time.time()
                return _Answer(response.status, response.headers, response.read(limit + 1), sent_at, received_at)
        except urllib.error.HTTPError as error:  # 3xx, 4xx, 5xx: an answer all the same
            received_at = time.time()
            try:
                data = error.fp.read(limit + 1) if error.fp is not None else b""
            finally:
                if error.fp is not None:
                    error.fp.close()
            return _Answer(error.code, error.headers or {}, data, sent_at, received_at)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, str):
            raise _Unreachable(reason) from None
        raise _Unreachable(f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__) from None


def _service_error(answer: _Answer) -> str:
    """``403 code_revoked: message``, from the service's error shape when it has one."""
    text = f"HTTP {answer.status}"
    try:
        error = json.loads(answer.body[:MAX_ANSWER_BYTES]).get("error")
        text += f" {error['code']}: {error['message']}"[:300]
    except (ValueError, AttributeError, KeyError, TypeError):
        pass
    if answer.status in (429, 503) and answer.headers.get("Retry-After"):
        text += f" (retry after {answer.headers['Retry-After']} s)"
    return text


def _note_clock(report: SyncReport, answer: _Answer) -> None:
    """The service's clock from the answer's ``Date`` (RFC 9110 section 6.6.1), kept if the best yet.

    ``Date`` has a resolution of one second and is the time the answer was
    made, somewhere between sending and receiving: the offset is taken from
    the middle of the second it names to the middle of the round trip, so it
    is good to about half a second plus half the round trip. Of a sync's
    answers, the one with the shortest round trip gives it.
    """
    value = answer.headers.get("Date")
    if not value or not answer.received_at:
        return
    try:
        served = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return
    if served.tzinfo is None:  # RFC 9110: "-0000" or no zone at all; a Date is GMT anyway
        served = served.replace(tzinfo=datetime.UTC)
    round_trip = max(0.0, answer.received_at - answer.sent_at)
    if report.clock_round_trip is not None and report.clock_round_trip <= round_trip:
        return
    report.clock_round_trip = round_trip
    report.clock_offset_seconds = served.timestamp() + 0.5 - (answer.sent_at + answer.received_at) / 2


def status_header(members: Mapping[str, float | None]) -> str:
    """``keys-age=120, revocations-age=30, clock-offset=-2, pending=5``: an RFC 8941 dictionary of integers.

    A member whose value is unknown (None) is left out; values are rounded to
    whole seconds (or records) and kept within RFC 8941's 15 digits.
    """
    limit = 999_999_999_999_999
    return ", ".join(
        f"{name}={max(-limit, min(limit, round(value)))}" for name, value in members.items() if value is not None
    )


# -- the steps -----------------------------------------------------------------


def sync(
    verifier: SyncableVerifier,
    url: str,
    key: str,
    *,
    batch_size: int = MAX_BATCH_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
    now: float | None = None,
) -> SyncReport:
    """See :meth:`OfflineVerifier.sync`; the caller keeps two syncs of one verifier from overlapping."""
    outbox = verifier.outbox
    if outbox is None:
        raise ConfigurationError(
            "sync: this verifier's store keeps no outbox; give the verifier a path, a MemoryStore or an SqliteStore"
        )
    if not isinstance(url, str) or not url:
        raise ConfigurationError("sync needs the service's base URL, e.g. https://service.example")
    base = url.rstrip("/")
    try:
        check_url(base)
    except KeySetError as exc:
        raise ConfigurationError(f"sync: {exc.message}") from None
    if not isinstance(key, str) or not key.strip() or any(c in key for c in "\r\n"):
        raise ConfigurationError("sync needs the scanner's key (flask --app codeservice scanners add)")
    if type(batch_size) is not int or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigurationError(f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigurationError("timeout must be a positive number of seconds")
    now = time.time() if now is None else now

    report = SyncReport()
    _refresh_keys(verifier, base, timeout, now, report)
    _refresh_revocations(verifier, base, timeout, now, report)
    freshness = verifier.freshness
    report.keys_age_seconds = age(freshness.keys_fetched_at, now)
    report.revocations_age_seconds = age(freshness.revocations_fetched_at, now)
    _upload(outbox, base, key.strip(), batch_size, timeout, now, report)
    if report.clock_offset_seconds is not None:
        outbox.set_meta(CLOCK_META, {"offset": report.clock_offset_seconds, "measured_at": now})
    for error in report.errors:
        log.warning("sync with %s: %s", base, error)
    return report


def _fetch_if_changed(
    url: str, etag: str | None, *, accept: str, limit: int, timeout: float, report: SyncReport, what: str
) -> _Answer | None:
    """A conditional GET: the 200 or 304 answer, or None with the reason in the report."""
    headers = {"Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    try:
        answer = _exchange(url, timeout=timeout, limit=limit, headers=headers)
    except _Unreachable as exc:
        report.errors.append(f"{what}: the service is unreachable ({exc}); keeping the cached copy")
        return None
    _note_clock(report, answer)
    if answer.status == 200 or (answer.status == 304 and etag):
        return answer
    report.errors.append(f"{what}: {url} answered {_service_error(answer)}; keeping the cached copy")
    return None


def _refresh_keys(verifier: SyncableVerifier, base: str, timeout: float, now: float, report: SyncReport) -> None:
    url = base + JWKS_PATH
    etag = verifier.freshness.keys_etag
    answer = _fetch_if_changed(
        url, etag, accept="application/jwk-set+json, application/json", limit=MAX_JWKS_BYTES,
        timeout=timeout, report=report, what="keys",
    )
    if answer is None:
        return
    if answer.status == 304:
        verifier.set_keys(verifier.keys, fetched_at=now, etag=etag)
        report.keys_refreshed = True
        return
    try:
        keys = KeySet.from_jwks(json_from_bytes(answer.body, "the response"))
        if not keys:
            raise KeySetError("the key set is empty")
    except KeySetError as exc:
        report.errors.append(f"keys: {url} served an unusable key set: {exc.message}; keeping the cached key set")
        return
    added, removed = sorted(set(keys) - set(verifier.keys)), sorted(set(verifier.keys) - set(keys))
    if added or removed:
        log.info("key set changed: added %s, removed %s", added or "none", removed or "none")
    verifier.set_keys(keys, fetched_at=now, etag=answer.headers.get("ETag"))
    report.keys_refreshed = True
    report.keys_added, report.keys_removed = added, removed


def _refresh_revocations(
    verifier: SyncableVerifier, base: str, timeout: float, now: float, report: SyncReport
) -> None:
    url = base + REVOCATIONS_PATH
    # Only a list of its own (set by an earlier sync or by hand) can be confirmed unchanged: not a live lookup.
    subs, credentials = verifier.revoked, verifier.revoked_credentials
    held = (subs, credentials) if isinstance(subs, frozenset) and isinstance(credentials, frozenset) else None
    etag = verifier.freshness.revocations_etag if held is not None else None
    answer = _fetch_if_changed(
        url, etag, accept="application/jose", limit=MAX_REVOCATION_LIST_BYTES,
        timeout=timeout, report=report, what="revocations",
    )
    if answer is None:
        return
    if answer.status == 304 and held is not None:
        verifier.set_revocations(
            held[0], credentials=held[1], fetched_at=now, issued_at=verifier.freshness.revocations_issued_at, etag=etag
        )
        report.revocations_refreshed = True
        report.revoked = len(held[0])
        return
    try:
        if len(answer.body) > MAX_REVOCATION_LIST_BYTES:
            raise RevocationListError(f"revocation list refused: larger than {MAX_REVOCATION_LIST_BYTES} bytes")
        try:
            jws = answer.body.decode("ascii").strip()
        except UnicodeDecodeError:
            raise RevocationListError("revocation list refused: it is not a compact JWS (not ASCII)") from None
        rules = verifier.rules
        revocations = verify_revocation_list(
            jws, verifier.keys, rules.issuer, now, algorithms=rules.algorithms, leeway=rules.leeway
        )
    except RevocationListError as exc:
        report.errors.append(f"revocations: {url}: {exc.message}; keeping the cached list")
        return
    verifier.set_revocations(
        revocations.subs,
        credentials=revocations.credentials,
        fetched_at=now,
        issued_at=revocations.issued_at,
        etag=answer.headers.get("ETag"),
    )
    report.revocations_refreshed = True
    report.revoked = len(revocations.subs)


def _upload(
    outbox: Outbox, base: str, key: str, batch_size: int, timeout: float, now: float, report: SyncReport
) -> None:
    url = base + USAGE_PATH
    headers = {"Content-Type": "application/json", "Accept": "application/json", "Authorization": f"Bearer {key}"}
    size = batch_size
    pending_count = getattr(outbox, "pending_count", None)  # an outbox of one's own may not count
    first = True
    while True:
        batch = outbox.pending_records(size)
        if not batch and not first:
            return
        # The first POST goes even with nothing to upload: the service hears from this verifier at every sync.
        first = False
        health = status_header(
            {
                "keys-age": report.keys_age_seconds,
                "revocations-age": report.revocations_age_seconds,
                "clock-offset": report.clock_offset_seconds,
                "pending": pending_count() if callable(pending_count) else None,
            }
        )
        body = json.dumps({"records": batch}, separators=(",", ":")).encode("utf-8")
        try:
            answer = _exchange(
                url,
                timeout=timeout,
                limit=MAX_ANSWER_BYTES,
                headers={**headers, STATUS_HEADER: health} if health else headers,
                body=body,
            )
        except _Unreachable as exc:
            report.errors.append(
                f"upload: no answer to a batch of {len(batch)} records ({exc}); "
                "they stay in the outbox and go with the next sync"
            )
            return
        if answer.status == 413 and len(batch) > 1:
            size = len(batch) // 2  # the service's body limit: smaller batches
            continue
        refused = _refused_record(answer, batch)
        if refused is not None and len(report.set_aside) < MAX_SET_ASIDE:
            record_id, reason = refused
            outbox.set_aside(record_id, reason, now)
            report.set_aside.append(record_id)
            report.errors.append(
                f"upload: the service refused record {record_id} ({reason}); set aside, the rest go on"
            )
            continue
        if answer.status != 200:
            report.errors.append(
                f"upload: the service refused a batch of {len(batch)} records: {_service_error(answer)}; "
                "they stay in the outbox"
            )
            return
        counts = _counts(answer.body)
        if counts is None or sum(counts) != len(batch):
            report.errors.append(
                f"upload: the service's answer to a batch of {len(batch)} records does not acknowledge "
                f"each of them ({answer.body[:200]!r}); they stay in the outbox"
            )
            return
        _note_clock(report, answer)
        if not batch:
            return
        outbox.mark_synced([record["id"] for record in batch])
        report.uploaded += counts[0]
        report.duplicates += counts[1]
        report.batches += 1


def _refused_record(answer: _Answer, batch: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The id of the one record a 400 names (``invalid_usage_record``, ``field`` ``records[i]…``), and why."""
    if answer.status != 400:
        return None
    try:
        error = json.loads(answer.body[:MAX_ANSWER_BYTES])["error"]
        code, where, message = error["code"], error["field"], error["message"]
    except (ValueError, KeyError, TypeError):
        return None
    match = _RECORD_FIELD.match(where) if isinstance(where, str) else None
    if code != "invalid_usage_record" or match is None or int(match[1]) >= len(batch):
        return None
    return batch[int(match[1])]["id"], str(message)[:300]  # the service's words name the member


def _counts(body: bytes) -> tuple[int, int] | None:
    """``(accepted, duplicates)`` from the usage endpoint's answer, or None."""
    try:
        answer = json_object(body)
    except JoseFormatError:
        return None
    accepted, duplicates = answer.get("accepted"), answer.get("duplicates")
    if type(accepted) is not int or type(duplicates) is not int or accepted < 0 or duplicates < 0:
        return None
    return accepted, duplicates
