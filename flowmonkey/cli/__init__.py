"""The ``flowmonkey`` command line (DESIGN.md §6 "CLI").

One module per command or command group (``topics``, ``wal`` and ``log`` have actions),
named for it, each exposing ``register_<name>(subparsers)``; the command table and the
entry point are in :mod:`flowmonkey.cli.commands`. Shared pieces: :mod:`.options` (the
option builders every command uses), :mod:`.common` (errors, exit codes, loading flows,
handlers and input), :mod:`.settings` (the settings from options and environment, and
the errors that say what to check), :mod:`.service` (the foreground loop of the
long-running commands) and :mod:`.format` (events for humans).

This module imports nothing else, so importing one command module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowmonkey`` command; returns the exit code."""
    from flowmonkey.cli.commands import main as run

    return run(argv)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``flowmonkey`` command and all its subcommands."""
    from flowmonkey.cli.commands import build_parser as build

    return build()
