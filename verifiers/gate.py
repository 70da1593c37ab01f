"""``python -m verifiers gate``: the loop for hardware readers (contract section 6).

A QR reader types each code followed by Enter, or writes lines on a serial
port; the gate reads them one at a time, verifies each offline with its
:class:`~verifiers.verifier.OfflineVerifier` (a durable store), and prints
one decision as JSON per line, in order (flushed as below). Around it:

- Decision lines are flushed once the input in hand is decided (a reader's
  lone scan at once; lines that arrive together, from a pipe, every
  :data:`FLUSH_EVERY`), which saves a write per line where it counts. The
  store has each decision before its line is written, flushed or not.
- :class:`LineSplitter` cuts the input into lines (one trailing ``\\r\\n`` or
  ``\\n`` stripped) without ever holding more than :data:`MAX_LINE_BYTES` of
  one line: a longer line is decided on its first bytes (malformed) and the
  rest is dropped up to its newline. Blank lines are skipped.
- :class:`HookRunner` runs ``--on-accept`` / ``--on-reject`` commands (a
  relay, a speaker) one at a time in a thread of their own, never through a
  shell, with the decision on their standard input and in
  ``CODESERVICE_DECISION``, each for at most ``hook_timeout`` seconds; their
  output goes to standard error, never into the decisions; a failure is
  logged, never fatal.
- :class:`BackgroundSync` syncs with the service at start and then every
  ``sync_every`` seconds in a thread; decisions never wait for it, and a
  failed sync is logged and tried again at the next turn.

``SIGTERM`` (and ``SIGINT``) finish the decision in hand and end the loop;
``SIGUSR1`` prints how old the key set and revocation list are and the
clock offset last measured (as at start). Each sync measures the service's
clock from its answers' ``Date`` (to about a second) and warns when this
machine's differs by more than :data:`MAX_CLOCK_OFFSET`; it also reports the
gate's health to the service with the upload (``Codeservice-Verifier-Status``,
:mod:`verifiers.sync`).
Every decision is in the store's outbox before its line is printed. A key
set given with ``--jwks`` is kept in the store too (:func:`keep_keys`), so a
gate restarted without it goes on verifying.
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from .decision import Decision
from .keys import KeySet
from .sync import CLOCK_META
from .verifier import OfflineVerifier

MAX_LINE_BYTES = 8192
"""The longest line kept (twice the longest code, contract section 9): beyond it, malformed."""
READ_CHUNK = 65536
FLUSH_EVERY = 32
"""Decisions written before a flush when many lines arrive at once (a pipe); a lone scan is flushed at once."""
DEFAULT_SYNC_EVERY = 60.0
DEFAULT_HOOK_TIMEOUT = 10.0
HOOK_QUEUE_SIZE = 64
DECISION_ENV = "CODESERVICE_DECISION"
MAX_CLOCK_OFFSET = 30.0
"""Seconds this machine's clock may differ from the service's before each sync warns."""
PROG = "python -m verifiers gate"

_stderr_lock = threading.Lock()


def warn(message: str) -> None:
    """One line on standard error, whole even with the sync and hook threads writing too."""
    with _stderr_lock:
        sys.stderr.write(f"{PROG}: {message}\n")
        sys.stderr.flush()


class LineSplitter:
    """Bytes in, complete lines out, never holding more than ``max_line`` bytes of one line.

    A line longer than ``max_line`` comes out once, as its first ``max_line
    + 1`` bytes (too long to be a code: the verifier calls it malformed);
    the rest of it is dropped as it arrives, up to its newline.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._dropping = False

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline
            if self._dropping:
                pass
            elif len(self._buffer) + end - start > self.max_line:
                self._buffer += data[start : start + self.max_line + 1 - len(self._buffer)]
                lines.append(bytes(self._buffer))
                self._buffer.clear()
                self._dropping = True
            else:
                self._buffer += data[start:end]
            if newline < 0:
                break
            if not self._dropping:
                lines.append(_strip_cr(bytes(self._buffer)))
                self._buffer.clear()
            self._dropping = False
            start = newline + 1
        return lines

    def finish(self) -> list[bytes]:
        """At the end of input: the last line, if it had no newline."""
        last, self._buffer, dropping = bytes(self._buffer), bytearray(), self._dropping
        self._dropping = False
        return [] if dropping or not last else [last]


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def is_blank(line: bytes) -> bool:
    return not line.strip()


# UTF-8 whatever the terminal's locale: station names are often Chinese. One encoder for every line
# (json.dumps with arguments builds a new one per call).
_encode_json = json.JSONEncoder(ensure_ascii=False).encode


def decision_line(decision: Decision) -> bytes:
    return _encode_json(decision.to_dict()).encode("utf-8") + b"\n"


class HookRunner:
    """Run a command per decision, in order, in one thread: a slow relay never holds up the next scan.

    ``commands`` maps True (accepted) and False (rejected) to an argument
    list (None: nothing to run). At most :data:`HOOK_QUEUE_SIZE` wait; past
    that a decision's command is skipped (and logged) rather than run late.
    """

    def __init__(self, commands: Mapping[bool, Sequence[str] | None], timeout: float = DEFAULT_HOOK_TIMEOUT) -> None:
        self.commands = {ok: list(argv) for ok, argv in commands.items() if argv}
        self.timeout = timeout
        self._queue: queue.Queue[tuple[list[str], bytes] | None] = queue.Queue(HOOK_QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        if self.commands:
            self._thread = threading.Thread(target=self._work, name="gate-hooks", daemon=True)
            self._thread.start()

    def submit(self, decision: Decision, line: bytes) -> None:
        argv = self.commands.get(decision.ok)
        if argv is None:
            return
        try:
            self._queue.put_nowait((argv, line.rstrip(b"\n")))
        except queue.Full:
            warn(f"hook {argv[0]!r} skipped: {HOOK_QUEUE_SIZE} decisions already wait for their hooks")

    def close(self) -> None:
        """Run what is queued (each within its timeout), then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            run_hook(*item, timeout=self.timeout)


def run_hook(argv: list[str], decision_json: bytes, *, timeout: float) -> None:
    """Run one hook: the decision on its standard input and in the environment; its output to stderr."""
    env = {**os.environ, DECISION_ENV: decision_json.decode("utf-8")}
    try:
        result = subprocess.run(
            argv, input=decision_json, env=env, stdout=sys.stderr.fileno(), timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        warn(f"hook {argv[0]!r} killed after {timeout:g} s")
    except (OSError, ValueError) as exc:
        warn(f"hook {argv[0]!r} could not run: {exc}")
    else:
        if result.returncode != 0:
            warn(f"hook {argv[0]!r} exited with status {result.returncode}")


class BackgroundSync:
    """``verifier.sync(url, key)`` at start and every ``every`` seconds, in a thread; errors logged."""

    def __init__(self, verifier: OfflineVerifier, url: str, key: str, every: float = DEFAULT_SYNC_EVERY) -> None:
        self.verifier, self.url, self._key, self.every = verifier, url, key, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="gate-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """No new sync; wait (at most ``timeout`` s) for one in progress to end."""
        self._stop.set()
        self._thread.join(timeout)

    def sync_once(self) -> None:
        try:
            report = self.verifier.sync(self.url, self._key)
        except Exception as exc:  # any failure of a sync: it never stops the loop
            warn(f"sync failed: {exc.__class__.__name__}: {exc}")
            return
        for error in report.errors:
            warn(f"sync: {error}")
        if report.ok:
            warn(f"synced: {report.uploaded} records uploaded, {report.duplicates} already held")
        offset = report.clock_offset_seconds
        if offset is not None and abs(offset) > MAX_CLOCK_OFFSET:
            warn(
                f"warning: this machine's clock is {abs(offset):.0f} s "
                f"{'behind' if offset > 0 else 'ahead of'} the service's (more than {MAX_CLOCK_OFFSET:g} s): "
                "codes may be refused as expired or not yet valid; set the clock (NTP)"
            )

    def _work(self) -> None:
        while not self._stop.is_set():
            self.sync_once()
            self._stop.wait(self.every)


def keep_keys(verifier: OfflineVerifier, keys: KeySet) -> None:
    """``--jwks``'s key set, kept in the store: a gate restarted without ``--jwks`` (or network) goes on with it.

    Left alone when the store already holds the very same keys, so that
    their age (from the last sync) still holds.
    """
    saved = verifier.outbox.get_meta("keys") if verifier.outbox is not None else None
    if not saved or saved.get("jwks") != keys.to_jwks():
        verifier.set_keys(keys)


def status_line(verifier: OfflineVerifier, now: float | None = None) -> str:
    """The keys' and revocation list's ages and the clock offset last measured, for standard error."""
    status = verifier.status()
    now = time.time() if now is None else now

    def how_old(seconds: float | None) -> str:
        return "never confirmed by the service" if seconds is None else f"{seconds:.0f} s old"

    revoked = "" if status.revoked is None else f" ({status.revoked} code ids)"
    return (
        f"keys {', '.join(status.kids)}: {how_old(status.keys_age_seconds)}; "
        f"revocation list{revoked}: {how_old(status.revocations_age_seconds)}; "
        f"{clock_text(verifier, now)}"
    )


def clock_text(verifier: OfflineVerifier, now: float) -> str:
    """``clock offset +2 s (service minus this machine, measured 30 s ago)``, from the store's last sync."""
    clock: Any = verifier.outbox.get_meta(CLOCK_META) if verifier.outbox is not None else None
    try:
        offset, measured_at = float(clock["offset"]), float(clock["measured_at"])
    except (TypeError, KeyError, ValueError):
        return "clock offset unknown (no sync yet)"
    since = max(0.0, now - measured_at)
    return f"clock offset {offset:+.0f} s (service minus this machine, measured {since:.0f} s ago)"


@dataclass
class Gate:
    """The loop: lines from ``fd`` in, decisions to ``out`` (a binary stream), until EOF or a stop signal."""

    verifier: OfflineVerifier
    scene: str
    context: dict[str, Any]
    fd: int
    out: Any = field(default_factory=lambda: sys.stdout.buffer)
    hooks: HookRunner | None = None
    splitter: LineSplitter = field(default_factory=LineSplitter)
    decided: int = 0
    _stopping: bool = False
    _status_wanted: bool = False

    def run(self) -> None:
        """Decide every line until the input ends or SIGTERM/SIGINT arrives; BrokenPipeError if ``out`` closes."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        previous = _install_signals(self._on_signal, wake_write)
        try:
            self._loop(wake_read)
        finally:
            _restore_signals(previous)
            os.close(wake_read)
            os.close(wake_write)

    def _loop(self, wake_read: int) -> None:
        while not self._stopping:
            if self._status_wanted:
                self._status_wanted = False
                warn(status_line(self.verifier))
            ready, _, _ = select.select([self.fd, wake_read], [], [])
            if wake_read in ready:
                os.read(wake_read, 512)  # the signal's byte; its handler has set the flags
            if self._stopping or self.fd not in ready:
                continue
            data = os.read(self.fd, READ_CHUNK)
            lines = self.splitter.feed(data) if data else self.splitter.finish()
            try:
                for line in lines:
                    if self._stopping:  # finish the decision in hand, no more
                        break
                    self._decide(line)
            finally:
                self.out.flush()  # before waiting for more input (or stopping): nothing is held back
            if not data:
                return

    def _decide(self, line: bytes) -> None:
        if is_blank(line):
            return
        decision = self.verifier.verify(line.decode("utf-8", errors="replace"), self.scene, self.context)
        self.decided += 1
        output = decision_line(decision)
        self.out.write(output)
        if self.decided % FLUSH_EVERY == 0:
            self.out.flush()
        if self.hooks is not None:
            self.hooks.submit(decision, output)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGUSR1:
            self._status_wanted = True
        else:
            self._stopping = True


def _install_signals(handler: Callable[[int, FrameType | None], None], wake_fd: int) -> dict[int, Any]:
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
    previous: dict[int, Any] = {sig: signal.signal(sig, handler) for sig in signals}
    previous[-1] = signal.set_wakeup_fd(wake_fd, warn_on_full_buffer=False)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    signal.set_wakeup_fd(previous.pop(-1))
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _silence_stdout() -> None:
    """After a broken pipe: nothing more to say there, not even at the interpreter's exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def serve(
    verifier: OfflineVerifier,
    scene: str,
    context: dict[str, Any],
    *,
    fd: int,
    hooks: HookRunner | None = None,
    background_sync: BackgroundSync | None = None,
) -> int:
    """Run the gate to its end; 0 at the end of input or on SIGTERM, 1 when standard output went away.

    Stops the sync, runs the hooks still queued and closes the verifier's
    store (every decision is already in it) whatever happens.
    """
    warn(status_line(verifier))
    gate = Gate(verifier, scene, context, fd, hooks=hooks)
    status = 0
    try:
        if background_sync is not None:
            background_sync.start()
        gate.run()
    except BrokenPipeError:
        warn("standard output closed: stopping")
        _silence_stdout()
        status = 1
    finally:
        if background_sync is not None:
            background_sync.stop()
        if hooks is not None:
            hooks.close()
        verifier.close()
    warn(f"stopped after {gate.decided} decisions, each in the store")
    return status
