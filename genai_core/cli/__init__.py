"""Command line: `python -m genai_core prepare | train | sample | eval | runs | bench | demo-qa`.

Every configuration flag maps to one field of the pydantic configs in `config.py`, and a flag that
is not given is not passed at all (argparse.SUPPRESS), so the defaults and help texts live in one
place. Errors a person caused print one `error:` line and exit with code 2; bugs keep their
traceback (exit 1).

Heavy modules (torch, pandas) are imported inside the command handlers, so `--help` and argument
errors answer at once.

Where things are: `parser` builds the argparse tree (one function per command), `options` maps
flags to config fields and back, the handlers live in `prepare_train`, `sample_eval` and
`runs_bench_demo`, terminal output (tables, the progress line, training lines, Ctrl-C) in
`console`, and `entry.main` turns what went wrong into one `error:` line and an exit status.
"""

from genai_core.cli.console import StopOnCtrlC
from genai_core.cli.entry import main
from genai_core.cli.parser import build_parser

__all__ = ["StopOnCtrlC", "build_parser", "main"]
