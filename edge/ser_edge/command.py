"""What every command entry point does around its job: the process's allocator policy
and one-line errors for a user's mistakes instead of tracebacks."""

from __future__ import annotations

import argparse
import sys

from .memory import keep_freed_memory


def run(parser: argparse.ArgumentParser, argv: list[str] | None, mistakes: tuple[type[Exception], ...]) -> int:
    """Parse, run ``args.func(args)``, and turn the given exception types into
    ``<prog>: error: <message>`` on stderr with exit status 2."""
    args = parser.parse_args(argv)
    keep_freed_memory()
    try:
        return args.func(args)
    except mistakes as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
