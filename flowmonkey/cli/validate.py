"""``flowmonkey validate``: validate flow files, print OK or the problems."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from flowmonkey.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    Bundle,
    CliError,
    all_handlers,
    flow_problems,
    load_flow_source,
    load_handlers_spec,
)
from flowmonkey.cli.options import add_command, add_handlers_option
from flowmonkey.model.flow_calls import self_call_warning
from flowmonkey.model.limits import DEFAULT_MAX_SUBFLOW_DEPTH

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.handlers.base import StepHandler

VALIDATE_EPILOG = """\
Checks structure (steps, transitions, initial step), handler types (the built-in
ones plus those given with --handlers or defined by a Python flow file) and pipe
tables; triggers (a flow file's `triggers:` section, a file whose top level is
`triggers:`, a module's `triggers`): their fields, cron expressions and timezones, and
that the flows they name are among the files given; and forms (`forms:` likewise):
their fields, their JSON Schema against the meta-schema, its patterns with RE2, and
their flows. Exit code 0 when every flow, trigger and form is valid, 2 otherwise.

examples:
  flowmonkey validate examples/flows/order.json examples/flows/order.yaml
  flowmonkey validate my_flows.py --handlers my_handlers
"""


def register_validate(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "validate", help="validate flow files",
                    description="Validate flow definitions and print OK or the problems.",
                    epilog=VALIDATE_EPILOG)
    p.add_argument("flow_files", metavar="FLOW_FILE", nargs="+",
                   help="flow files (.json/.yaml/.py) or module[:attribute]")
    add_handlers_option(p, help="handlers the flows use besides the built-in ones; "
                                "repeatable")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    extra: list[StepHandler] = []
    for spec in args.handlers:
        extra.extend(load_handlers_spec(spec))
    failures = 0
    loaded: list[tuple[str, Bundle]] = []
    for spec in args.flow_files:
        bad, bundle = _validate_one(spec, extra)
        failures += bad
        if bundle is not None:
            loaded.append((spec, bundle))
    failures += _validate_triggers(loaded)
    total = len(args.flow_files)
    if failures:
        print(f"{failures} of {total} file(s) invalid", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"all {total} file(s) valid")
    return EXIT_OK


def _validate_triggers(loaded: Sequence[tuple[str, Bundle]]) -> int:
    """Check the triggers and forms of every file against the flows of every file (a
    trigger or form file names flows defined in others); how many files have a bad
    one."""
    from flowmonkey.runtime import form_defs, trigger_defs

    def trigger_line(t: Any) -> str:
        return f"trigger {t.id} ({t.kind} -> {t.flow_id}" + (
            "" if t.enabled else ", disabled") + ")"

    def form_line(f: Any) -> str:
        target = f"-> {f.flow_id}" if f.flow_id else "for form-submit steps"
        return f"form {f.id} ({target}" + ("" if f.enabled else ", disabled") + ")"

    flow_ids = {f.id for _, bundle in loaded for f in bundle.flows}
    failures: set[str] = set()
    kinds: list[tuple[str, Callable[[Bundle], Sequence[Any]],
                      Callable[[Sequence[Any], set[str]], list[str]], Callable[[Any], str]]] = [
        ("trigger", attrgetter("triggers"), trigger_defs.cross_problems, trigger_line),
        ("form", attrgetter("forms"), form_defs.cross_problems, form_line)]
    for what, items_of, cross, line in kinds:
        everything = [item for _, bundle in loaded for item in items_of(bundle)]
        for spec, bundle in loaded:
            mine = {item.id for item in items_of(bundle)}
            if not mine:
                continue
            problems = [p for p in cross(everything, flow_ids)
                        if any(p.startswith(f"{what} {i!r}:") for i in mine)]
            if problems:
                failures.add(spec)
                print(f"FAIL {spec}: {what}s", file=sys.stderr)
                for problem in problems:
                    print(f"  {problem}", file=sys.stderr)
                continue
            for item in items_of(bundle):
                print(f"OK   {spec}: {line(item)}")
    return len(failures)


def _validate_one(spec: str, extra: Sequence[StepHandler]) -> tuple[int, Bundle | None]:
    try:
        bundle = load_flow_source(spec, all_handlers(extra, allow_private_http=False))
    except CliError as exc:
        message = str(exc)
        print(f"FAIL {message if message.startswith(spec) else f'{spec}: {message}'}",
              file=sys.stderr)
        return 1, None
    handlers = all_handlers([*extra, *bundle.handlers], allow_private_http=False)
    known_flows = {f.id for f in bundle.flows}
    bad = False
    for flow in bundle.flows:
        problems = flow_problems(flow, handlers, bundle.tables)
        if problems:
            bad = True
            print(f"FAIL {spec}: {flow.ref}", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            continue
        notes = [f"step {s.id!r} starts flow {s.config.get('flowId')!r}, which is not in "
                 "this file" for s in flow.steps.values()
                 if s.type == "sub-flow" and s.config.get("flowId") not in known_flows]
        print(f"OK   {spec}: {flow.ref} ({len(flow.steps)} steps"
              + (f", {len(flow.pipes)} pipes" if flow.pipes else "") + ")")
        for note in notes:
            print(f"     note: {note}")
        warning = self_call_warning(flow.id, bundle.flows, DEFAULT_MAX_SUBFLOW_DEPTH)
        if warning is not None:
            print(f"     warning: {warning}")
    return (1 if bad else 0), bundle
