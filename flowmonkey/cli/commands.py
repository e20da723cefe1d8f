"""The ``flowmonkey`` command's table of commands, its parser and its entry point.

Every command lives in a module of its own that exposes ``register_<name>(subparsers)``;
that function adds the command's parser and sets ``func`` (``(args) -> exit code``) as
its default. To add a command, write ``flowmonkey/cli/<name>.py`` with its
``register_<name>`` and put it in :data:`COMMANDS`.
Command modules import the engine lazily, inside ``func``, so ``--help`` stays fast.

Exit codes: 0 success, 1 the flow failed or was cancelled (or something did not finish),
2 bad input (the message says what to fix), 3 an execution waits for a signal.
User errors are printed to stderr without a traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from flowmonkey.cli.api import register_api
from flowmonkey.cli.bench import register_bench
from flowmonkey.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, CliError
from flowmonkey.cli.demo import register_demo
from flowmonkey.cli.dev import register_dev
from flowmonkey.cli.jobs import register_jobs
from flowmonkey.cli.log import register_log
from flowmonkey.cli.migrate import register_migrate
from flowmonkey.cli.options import add_common_options
from flowmonkey.cli.processor import register_processor
from flowmonkey.cli.projector import register_projector
from flowmonkey.cli.rebuild import register_rebuild
from flowmonkey.cli.replay import register_replay
from flowmonkey.cli.run import register_run
from flowmonkey.cli.topics import register_topics
from flowmonkey.cli.trigger_consumer import register_trigger_consumer
from flowmonkey.cli.triggers import register_triggers
from flowmonkey.cli.validate import register_validate
from flowmonkey.cli.wal import register_wal
from flowmonkey.cli.worker import register_worker

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers

COMMANDS: list[Callable[[Subparsers], None]] = [
    register_run,
    register_dev,
    register_demo,
    register_validate,
    register_processor,
    register_projector,
    register_worker,
    register_trigger_consumer,
    register_api,
    register_topics,
    register_migrate,
    register_replay,
    register_rebuild,
    register_wal,
    register_jobs,
    register_triggers,
    register_log,
    register_bench,
]

EPILOG = """\
examples:
  flowmonkey demo                                   # a built-in order flow, end to end
  flowmonkey run examples/flows/order.json --input '{"order": {"id": "A-1", "items": []}}'
  flowmonkey validate examples/flows/*.json examples/flows/*.yaml
  flowmonkey dev --app myapp.flows:app --start order-processing --input '{}'

Run `flowmonkey COMMAND --help` for the options of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    from flowmonkey import __version__

    parser = argparse.ArgumentParser(
        prog="flowmonkey",
        description="FlowMonkey: an event-sourced workflow engine. Run flows, a local "
                    "development engine, or the built-in demo.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flowmonkey {__version__}")
    add_common_options(parser, top_level=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowmonkey`` command; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "accepts_extra", False):
            args.rest = [*getattr(args, "rest", []), *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    debug = bool(getattr(args, "debug", False))
    try:
        code = func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except CliError as exc:
        _report(exc, exc.exit_code, debug)
        return exc.exit_code
    except (ValueError, OSError) as exc:
        _report(exc, EXIT_BAD_INPUT, debug)
        return EXIT_BAD_INPUT
    except Exception as exc:
        from flowmonkey.errors import FlowMonkeyError

        if not isinstance(exc, FlowMonkeyError):
            raise
        _report(exc, EXIT_BAD_INPUT, debug)
        return EXIT_BAD_INPUT
    sys.stdout.flush()
    return int(code)


def _report(exc: BaseException, exit_code: int, debug: bool) -> None:
    sys.stdout.flush()
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    from flowmonkey.errors import FlowMonkeyError

    message = str(exc) or type(exc).__name__
    # our errors say what went wrong in words; Python's (ValueError, OSError) need
    # their kind to make sense
    if not isinstance(exc, CliError | FlowMonkeyError):
        message = f"{type(exc).__name__}: {message}"
    print(f"error: {message}", file=sys.stderr)
    hint = getattr(exc, "hint", None)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)

