"""The `vitscope` command line.

Each sub-command lives in its own module under `vitscope.commands` and exposes
`register(subparsers)`; this module only assembles them, so features add commands
without touching a shared file. Errors a user can act on are raised as `vitscope.contracts.errors.UserError`
and printed as one line with a non-zero exit.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from vitscope import commands
from vitscope.contracts.errors import UserError
from vitscope.vit.heap import keep_freed_memory

GC_THRESHOLD = (10_000, 10, 10)
"""The cyclic collector's thresholds in a `vitscope` process (Python's default: 700, 10, 10).

Importing torch and transformers leaves about 400,000 long-lived objects; at the default a process
traverses them all several times while it imports them (about a second of a `vitscope run`'s
start-up on a 2-core machine; none at this setting), and the analyses that follow allocate few
container objects (tensors' memory is not the collector's)."""


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Return the argument parser with the modules of `vitscope.commands` registered: only the one
    `argv` names when it names one (`vitscope run` imports no other command's module), else all."""
    parser = argparse.ArgumentParser(prog="vitscope", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = sorted(info.name for info in pkgutil.iter_modules(commands.__path__))
    word = next((word for word in argv or () if not word.startswith("-")), "")
    if (named := word.replace("-", "_")) in names:
        names.remove(named)
        importlib.import_module(f"{commands.__name__}.{named}").register(sub)
        if word in sub.choices:
            return parser
    for name in names:
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    return dispatch(build_parser(argv).parse_args(argv))


def entry() -> None:
    """The `vitscope` command as a process: `main` with the process-wide settings a short-lived command
    wants (`GC_THRESHOLD`), leaving through `finish`."""
    gc.set_threshold(*GC_THRESHOLD)
    argv = sys.argv[1:]
    finish(build_parser(argv).parse_args(argv))


def finish(args: argparse.Namespace, **extra: Any) -> NoReturn:
    """Run the parsed command (`extra` goes to its handler) and end the process with its status; for a
    command that sets `quick_exit` (`run`), without the interpreter's teardown.

    Tearing down torch's and transformers' modules and collecting their objects takes a second or
    more after the command is done; the process has nothing left to give back. Every `atexit`
    handler registered after this point (temporary folders, file locks, thread pools) still runs
    before the process leaves; then it leaves at once (`_leave`)."""
    status = [1]  # what the process returns if the command raises
    if getattr(args, "quick_exit", False):
        atexit.register(_leave, status)  # registered before the command's own handlers, so it runs last
    status[0] = dispatch(args, **extra)
    sys.exit(status[0])


def _leave(status: list[int]) -> None:
    """Flush what the command wrote and leave with `status[0]`, skipping the interpreter's teardown."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone (`| head`) or a closed stream
            stream.flush()
    os._exit(status[0])


def dispatch(args: argparse.Namespace, **extra: Any) -> int:
    """Run the parsed command (`extra` goes to its handler); return the process exit status (2 for a
    `UserError`, printed as one line)."""
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    keep_freed_memory()  # CPU analyses reuse freed activations instead of faulting them in again
    try:
        result = args.handler(args, **extra)
    except UserError as exc:
        print(f"vitscope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    entry()
