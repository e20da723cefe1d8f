"""Commands that are not built yet. Each prints what it will do and exits 2.

To implement one, write ``flowmonkey/cli/<name>.py`` with ``register_<name>(subparsers)``
and swap it for the placeholder in ``flowmonkey.cli.commands.COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from flowmonkey.cli.common import EXIT_BAD_INPUT
from flowmonkey.cli.options import add_command

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers

PLANNED: dict[str, tuple[str, str]] = {
    "worker": ("run job workers",
               "run workers for stateful (job) handlers: claim jobs, heartbeat, "
               "checkpoint and complete them"),
}


def _placeholder(subparsers: Subparsers, name: str) -> None:
    summary, what = PLANNED[name]
    parser = add_command(
        subparsers, name, help=f"{summary} (not available yet)",
        description=f"Not available yet. It will {what}.",
        epilog=f"example (once available):\n  flowmonkey {name} --help")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def run(args: argparse.Namespace) -> int:
        print(f"not available yet: flowmonkey {name} will {what}", file=sys.stderr)
        return EXIT_BAD_INPUT

    parser.set_defaults(func=run, accepts_extra=True)


def register_worker(subparsers: Subparsers) -> None:
    _placeholder(subparsers, "worker")
