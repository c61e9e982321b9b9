"""Root of the ``tfcovid`` command: argument parsing, error reporting, exit codes.

Exit codes: 0 success, 2 a user-fixable problem (bad input, bad arguments), printed as one line
``tfcovid: error: <file>: <problem>``; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

import tfcovid
from tfcovid.cli import (bench, data, demo, evaluate, export, predict, pretrain, pseudo_label,
                         severity, stichnet, train)
from tfcovid.errors import TfcovidError

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfcovid", description="COVID-19 lung CT infection segmentation and severity.")
    parser.add_argument("--version", action="version", version=f"tfcovid {tfcovid.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or info logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (data, demo, pretrain, train, pseudo_label, evaluate, export, predict, severity,
                   stichnet, bench):
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s")
    # TensorFlow's own info lines (absl: one per checkpoint save) would bury tfcovid's.
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        args.run(args)
    except TfcovidError as error:
        if args.debug:
            traceback.print_exc()
        print(f"tfcovid: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # output piped into a reader that stopped early, e.g. `| head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("tfcovid: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
