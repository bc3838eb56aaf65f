"""The entry point: parse, run the command's handler, and turn what went wrong into an exit status.

Errors a person caused print one `error:` line and exit with code 2; bugs keep their traceback (exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from genai_core.cli.console import world
from genai_core.cli.options import EXIT_INTERRUPTED, EXIT_USER_ERROR
from genai_core.cli.parser import build_parser
from genai_core.errors import user_message


def _user_error(exc: BaseException) -> str | None:
    """The one-line message for an error a person caused, or None for a bug."""
    msg = user_message(exc)  # a full or read-only disk included (errors.storage_message)
    if msg is None and isinstance(exc, OSError) and exc.filename is not None:
        msg = f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    if msg is None:
        return None
    return " ".join(msg.splitlines()) or type(exc).__name__


def _print_error(message: str) -> None:
    """The one `error:` line on stderr, after what stdout already holds; other ranks than 0 say which they are."""
    sys.stdout.flush()
    rank, size = world()
    who = f"[rank {rank}] " if size > 1 and rank else ""
    print(f"error: {who}{message}", file=sys.stderr, flush=True)


def _exit_code(code: object) -> int:
    """The exit status a SystemExit carries (its message, if it carries one, goes to stderr)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except SystemExit as e:  # --help and usage errors: return the status so main() always returns
        return _exit_code(e.code)
    except KeyboardInterrupt:
        _print_error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error. Point stdout at devnull so the
        # interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        message = _user_error(exc)
        if message is None:
            raise
        _print_error(message)
        return EXIT_USER_ERROR
