"""The `vitscope` command line.

Each sub-command lives in its own module under `vitscope.commands` and exposes
`register(subparsers)`; this module only assembles them, so features add commands
without touching a shared file. Errors a user can act on are raised as `vitscope.contracts.errors.UserError`
and printed as one line with a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from vitscope import commands
from vitscope.contracts.errors import UserError
from vitscope.vit.heap import keep_freed_memory


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every module of `vitscope.commands` registered."""
    parser = argparse.ArgumentParser(prog="vitscope", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    keep_freed_memory()  # CPU analyses reuse freed activations instead of faulting them in again
    try:
        result = args.handler(args)
    except UserError as exc:
        print(f"vitscope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
