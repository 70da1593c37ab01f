"""``python -m verifiers check``: verify one code offline and print the decision.

The code is any of the three forms (contract section 2): a JWS, a device
code (``RSD1:``) or a paper code (``RSP1:``, accepted only with
``--attended``, a staffed scanner).

Exit status: 0 accepted, 1 rejected, 2 a usage error (bad arguments, a key
set that cannot be read). No input produces a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .contract import DEFAULT_ISSUER
from .errors import VerifierError
from .jose import JoseFormatError, json_object
from .keys import KeySet
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
    return parser


def read_token(argument: str) -> str:
    if argument != "-":
        return argument
    data = sys.stdin.buffer.read(64 * 1024)
    text = data.decode("utf-8", errors="replace")
    return text[:-1] if text.endswith("\n") else text


def check(arguments: argparse.Namespace) -> int:
    try:
        context = json_object(arguments.context.encode("utf-8", errors="surrogateescape"))
    except JoseFormatError as exc:
        print(f"python -m verifiers: error: --context is not a JSON object: {exc}", file=sys.stderr)
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


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        return check(arguments)
    except KeyboardInterrupt:
        return EXIT_USAGE
    except Exception as exc:  # the promise: never a traceback
        print(f"python -m verifiers: internal error: {exc.__class__.__name__}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
