"""The `rung` command. Subcommands come from the `rung.commands` entry-point group, so that
the server distribution adds `serve` and `db` without the client depending on it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from .errors import RungError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rung", description="Rung: Hyperband as a service.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for entry in sorted(entry_points(group="rung.commands"), key=lambda e: e.name):
        entry.load()(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RungError as exc:  # the server's refusal, or no server: one line, not a traceback
        print(f"rung {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
