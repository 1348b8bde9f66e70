"""What every command entry point does around its job: the process's allocator policy
and one-line errors for a user's mistakes instead of tracebacks."""

from __future__ import annotations

import argparse
import sys

from ser_edge.tools.memory import keep_freed_memory

#: sysexits.h EX_CONFIG: systemd units can refuse to restart on it (RestartPreventExitStatus=78).
EX_CONFIG = 78


def run(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    mistakes: tuple[type[Exception], ...],
    config_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Parse, run ``args.func(args)``, and turn the given exception types into
    ``<prog>: error: <message>`` on stderr: exit status 78 for config errors, else 2."""
    args = parser.parse_args(argv)
    keep_freed_memory()
    try:
        return args.func(args)
    except config_errors as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return EX_CONFIG
    except mistakes as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
