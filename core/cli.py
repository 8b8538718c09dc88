"""Command lines with subcommands (`python -m model`, `python -m report`): each subcommand is one
`Command` (its help, a function that adds its arguments, a function that runs it and returns the
line printed to stderr), and `main` parses, runs, and turns an error the user can fix (a bad
value, a missing file) into one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Mapping, NamedTuple

FIXABLE = (ValueError, FileNotFoundError, RuntimeError, KeyError)


class Command(NamedTuple):
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], str | None]


def parser(prog: str, description: str, commands: Mapping[str, Command]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    sub = p.add_subparsers(dest="command", required=True)
    for name, command in commands.items():
        command.arguments(sub.add_parser(name, help=command.help))
    return p


def main(prog: str, description: str, commands: Mapping[str, Command], argv: list[str] | None = None) -> int:
    args = parser(prog, description, commands).parse_args(argv)
    try:
        message = commands[args.command].run(args)
    except FIXABLE as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if message:
        print(message, file=sys.stderr)
    return 0
