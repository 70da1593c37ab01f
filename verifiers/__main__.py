"""``python -m verifiers check``: verify one code offline and print the decision; ``gate``: the loop.

The code is any of the three forms (contract section 2): a JWS, a device
code (``RSD1:``) or a paper code (``RSP1:``, accepted only with
``--attended``, a staffed scanner).

Exit status: 0 accepted, 1 rejected, 2 a usage error (bad arguments, a key
set that cannot be read). No input produces a traceback.

``gate`` (:mod:`verifiers.gate`, the loop's logic; here only its arguments):
one code per line in, one decision per line out, until the end of input or
SIGTERM (exit 0); 2 a usage error, 1 when standard output goes away.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from .contract import DEFAULT_ISSUER
from .errors import VerifierError
from .gate import (
    DEFAULT_HOOK_TIMEOUT,
    DEFAULT_SYNC_EVERY,
    BackgroundSync,
    HookRunner,
    keep_keys,
    serve,
)
from .jose import JoseFormatError, json_object
from .keys import KeySet, check_url
from .verifier import OfflineVerifier

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m verifiers", description="Verify resident service codes offline.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = commands.add_parser("check", help="verify one code and print the decision as JSON")
    check.add_argument("--jwks", required=True, help="the issuer's JWKS: a file path or an https URL")
    check.add_argument("--scene", required=True, help="the scene presented at, e.g. transit")
    check.add_argument("--issuer", default=DEFAULT_ISSUER, help=f"expected issuer (default {DEFAULT_ISSUER})")
    check.add_argument("--context", default="{}", help="the scene's context as a JSON object")
    check.add_argument("--leeway", type=int, default=10, help="clock leeway in seconds (default 10)")
    check.add_argument(
        "--attended", action="store_true", help="a staffed scanner (someone checks an ID card): accepts paper codes"
    )
    check.add_argument("token", help="the code, or - to read it from standard input")
    add_gate_parser(commands)
    return parser


def add_gate_parser(commands: argparse._SubParsersAction[_Parser]) -> None:
    gate = commands.add_parser(
        "gate", help="the loop for hardware readers: a code per line in, a decision as JSON per line out"
    )
    gate.add_argument("--scene", required=True, help="the scene presented at, e.g. transit")
    gate.add_argument("--context", default="{}", help="the scene's context as a JSON object")
    gate.add_argument("--store", required=True, help="the verifier's SQLite store: state and usage outbox")
    gate.add_argument("--jwks", help="the issuer's JWKS, a file path or an https URL (default: the store's)")
    gate.add_argument("--issuer", default=DEFAULT_ISSUER, help=f"expected issuer (default {DEFAULT_ISSUER})")
    gate.add_argument("--leeway", type=int, default=10, help="clock leeway in seconds (default 10)")
    gate.add_argument("--venue", help="the scanner's venue id, named in its usage records")
    gate.add_argument("--device", help="the scanner's device id, named in its usage records")
    gate.add_argument(
        "--attended", action="store_true", help="a staffed scanner (someone checks an ID card): accepts paper codes"
    )
    gate.add_argument("--sync", metavar="URL", help="the service to sync with (needs --key-file)")
    gate.add_argument("--key-file", help="a file holding the scanner's key, for --sync")
    gate.add_argument(
        "--sync-every", type=float, default=DEFAULT_SYNC_EVERY, metavar="SECONDS",
        help=f"seconds between syncs (default {DEFAULT_SYNC_EVERY:g})",
    )
    gate.add_argument("--on-accept", metavar="CMD", help="a command run for each accepted code (no shell)")
    gate.add_argument("--on-reject", metavar="CMD", help="a command run for each refused code (no shell)")
    gate.add_argument(
        "--hook-timeout", type=float, default=DEFAULT_HOOK_TIMEOUT, metavar="SECONDS",
        help=f"longest a command may run (default {DEFAULT_HOOK_TIMEOUT:g})",
    )
    gate.add_argument("--input", metavar="DEVICE", help="read from this file, FIFO, tty or serial device, not stdin")


def read_token(argument: str) -> str:
    if argument != "-":
        return argument
    data = sys.stdin.buffer.read(64 * 1024)
    text = data.decode("utf-8", errors="replace")
    return text[:-1] if text.endswith("\n") else text


def read_context(argument: str) -> dict[str, Any] | None:
    """``--context`` as a JSON object; None (after saying why on stderr) when it is not one."""
    try:
        return json_object(argument.encode("utf-8", errors="surrogateescape"))
    except JoseFormatError as exc:
        print(f"python -m verifiers: error: --context is not a JSON object: {exc}", file=sys.stderr)
        return None


def check(arguments: argparse.Namespace) -> int:
    context = read_context(arguments.context)
    if context is None:
        return EXIT_USAGE
    try:
        keys = KeySet.from_jwks(arguments.jwks)
        verifier = OfflineVerifier(
            keys, issuer=arguments.issuer, leeway=arguments.leeway, attended=arguments.attended
        )
    except VerifierError as exc:
        print(f"python -m verifiers: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    decision = verifier.verify(read_token(arguments.token), arguments.scene, context)
    # UTF-8 whatever the terminal's locale: station names are often Chinese.
    sys.stdout.buffer.write(json.dumps(decision.to_dict(), ensure_ascii=False).encode("utf-8") + b"\n")
    sys.stdout.flush()
    return EXIT_ACCEPTED if decision.ok else EXIT_REJECTED


class UsageError(Exception):
    """A gate argument that cannot be used: one line on stderr, exit 2."""


def hook_command(option: str, command: str | None) -> list[str] | None:
    if command is None:
        return None
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"{option} cannot be split into words: {exc}") from exc
    if not argv:
        raise UsageError(f"{option} is empty")
    return argv


def scanner_key(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            key = file.read(4096).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--key-file {path}: cannot be read: {getattr(exc, 'strerror', None) or exc}") from exc
    if not key or any(c.isspace() for c in key):
        raise UsageError(f"--key-file {path}: does not hold one scanner key")
    return key


def background_sync(arguments: argparse.Namespace) -> tuple[str, str] | None:
    if (arguments.sync is None) != (arguments.key_file is None):
        raise UsageError("--sync and --key-file go together")
    if arguments.sync is None:
        return None
    if not arguments.sync_every > 0:
        raise UsageError("--sync-every must be a positive number of seconds")
    try:
        check_url(arguments.sync)
    except VerifierError as exc:
        raise UsageError(f"--sync {exc.message}") from exc
    return arguments.sync, scanner_key(arguments.key_file)


def open_input(path: str | None) -> int:
    if path is None:
        return sys.stdin.fileno()
    try:
        return os.open(path, os.O_RDONLY | os.O_NOCTTY)
    except OSError as exc:
        raise UsageError(f"--input {path}: cannot be opened: {exc.strerror}") from exc


def gate(arguments: argparse.Namespace) -> int:
    context = read_context(arguments.context)
    if context is None:
        return EXIT_USAGE
    try:
        on_accept = hook_command("--on-accept", arguments.on_accept)
        on_reject = hook_command("--on-reject", arguments.on_reject)
        if not arguments.hook_timeout > 0:
            raise UsageError("--hook-timeout must be a positive number of seconds")
        sync_with = background_sync(arguments)
        keys = KeySet.from_jwks(arguments.jwks) if arguments.jwks is not None else None
        verifier = OfflineVerifier(
            keys,
            issuer=arguments.issuer,
            leeway=arguments.leeway,
            store=arguments.store,
            venue_id=arguments.venue,
            device_id=arguments.device,
            attended=arguments.attended,
        )
        if keys is not None:
            keep_keys(verifier, keys)
    except UsageError as exc:
        print(f"python -m verifiers: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except VerifierError as exc:
        print(f"python -m verifiers: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    try:
        fd = open_input(arguments.input)
    except UsageError as exc:
        verifier.close()
        print(f"python -m verifiers: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return serve(
        verifier,
        arguments.scene,
        context,
        fd=fd,
        hooks=HookRunner({True: on_accept, False: on_reject}, timeout=arguments.hook_timeout),
        background_sync=None if sync_with is None else BackgroundSync(verifier, *sync_with, every=arguments.sync_every),
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        return gate(arguments) if arguments.command == "gate" else check(arguments)
    except KeyboardInterrupt:
        return EXIT_USAGE
    except Exception as exc:  # the promise: never a traceback
        print(f"python -m verifiers: internal error: {exc.__class__.__name__}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
