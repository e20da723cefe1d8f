"""``flowmonkey run`` (run one flow, print its timeline) and ``flowmonkey validate``."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowmonkey.cli_common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_WAITING,
    Bundle,
    CliError,
    add_command,
    all_handlers,
    flow_problems,
    load_flow_source,
    load_handlers_spec,
    parse_json_text,
    read_input,
)
from flowmonkey.cli_format import (
    error_text,
    event_json,
    format_timeline,
    pretty,
    timeline_events,
)
from flowmonkey.kernel.inputs import is_missing_input
from flowmonkey.model.flow_calls import self_call_warning
from flowmonkey.model.limits import DEFAULT_MAX_SUBFLOW_DEPTH

if TYPE_CHECKING:
    from flowmonkey.cli_common import Subparsers
    from flowmonkey.events.envelope import Event
    from flowmonkey.handlers.base import StepHandler
    from flowmonkey.model.execution import Execution
    from flowmonkey.model.flow import Flow

RUN_EPILOG = """\
FLOW_FILE is a JSON or YAML flow (the original camelCase format is accepted), a
document {"flows": [...], "tables": [...]}, or a Python file/module exposing `flow`
or `flows` (and optionally `handlers` and `tables`). The flow runs with the built-in
handlers plus yours, on simulated time by default: waits and retry backoff take no
wall-clock time while the execution sees time pass.

exit codes: 0 completed, 1 failed or cancelled (or not finished within --timeout-s),
            2 bad input, 3 waiting for a signal (the resume token is printed)

examples:
  flowmonkey run examples/flows/order.json --input '{"order": {"id": "A-1", "items": []}}'
  flowmonkey run examples/flows/order.yaml --input-file examples/order-input.json --json
  flowmonkey run my_flows.py --flow approval --handlers my_handlers --resume '{"ok": true}'
  flowmonkey run pkg.flows:checkout --real-time --timeout-s 120
"""

VALIDATE_EPILOG = """\
Checks structure (steps, transitions, initial step), handler types (the built-in
ones plus those given with --handlers or defined by a Python flow file) and pipe
tables. Exit code 0 when every flow is valid, 2 otherwise.

examples:
  flowmonkey validate examples/flows/order.json examples/flows/order.yaml
  flowmonkey validate my_flows.py --handlers my_handlers
"""


def register_run(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "run", help="run one flow and print its timeline",
                    description="Run one flow in this process and print the execution's "
                                "timeline, final status, context and error.",
                    epilog=RUN_EPILOG)
    p.add_argument("flow_file", metavar="FLOW_FILE", help="flow file (.json/.yaml/.py) or "
                   "module[:attribute]")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="JSON", help="initial context, a JSON object")
    source.add_argument("--input-file", metavar="PATH", help="initial context from a JSON "
                        "or YAML file")
    p.add_argument("--flow", metavar="FLOW_ID", help="which flow to run when the file has "
                   "several (default: the first)")
    p.add_argument("--handlers", metavar="MODULE[:ATTR]", action="append", default=[],
                   help="extra handlers: a module's `handlers` list or the named attribute "
                        "(a .py path works too); repeatable")
    p.add_argument("--tenant", metavar="T", help="tenant id of the execution")
    p.add_argument("--timeout-s", metavar="N", type=float, default=30.0,
                   help="give up after N wall-clock seconds (default 30)")
    p.add_argument("--real-time", action="store_true",
                   help="run on the wall clock with a real Engine (waits really wait)")
    p.add_argument("--resume", metavar="JSON", action="append", default=[],
                   help="when the flow waits for a signal, resume it with this data; "
                        "repeat for several waits")
    p.add_argument("--allow-private-http", action="store_true",
                   help="let the http handler call private and loopback addresses")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document instead of the text report")
    p.set_defaults(func=cmd_run)


def register_validate(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "validate", help="validate flow files",
                    description="Validate flow definitions and print OK or the problems.",
                    epilog=VALIDATE_EPILOG)
    p.add_argument("flow_files", metavar="FLOW_FILE", nargs="+",
                   help="flow files (.json/.yaml/.py) or module[:attribute]")
    p.add_argument("--handlers", metavar="MODULE[:ATTR]", action="append", default=[],
                   help="handlers the flows use besides the built-in ones; repeatable")
    p.set_defaults(func=cmd_validate)


# --------------------------------------------------------------------------- run


@dataclass(slots=True)
class RunOutcome:
    execution: Execution
    events: list[Event]
    timed_out: bool
    wall_s: float


def _pick_flow(bundle: Bundle, flow_id: str | None, source: str) -> Flow:
    if flow_id is None:
        return bundle.flows[0]
    for flow in bundle.flows:
        if flow.id == flow_id:
            return flow
    known = ", ".join(f.id for f in bundle.flows)
    raise CliError(f"{source} has no flow {flow_id!r} (it has: {known})")


def cmd_run(args: argparse.Namespace) -> int:
    extra = [h for spec in args.handlers for h in load_handlers_spec(spec)]
    bundle = load_flow_source(args.flow_file, all_handlers(
        extra, allow_private_http=args.allow_private_http))
    bundle.handlers.extend(extra)
    flow = _pick_flow(bundle, args.flow, args.flow_file)
    context = read_input(args.input, args.input_file)
    resumes = [parse_json_text(text, f"--resume #{i + 1}") for i, text in
               enumerate(args.resume)]
    if args.timeout_s <= 0:
        raise CliError("--timeout-s must be positive")
    handlers = all_handlers(bundle.handlers, allow_private_http=args.allow_private_http)
    problems = flow_problems(flow, handlers, bundle.tables)
    if problems:
        raise CliError(f"{args.flow_file}: invalid flow:\n  " + "\n  ".join(problems))
    runner = _run_real_time if args.real_time else _run_simulated
    outcome = asyncio.run(runner(bundle, handlers, flow, context, resumes, args))
    if args.json:
        return _report_json(outcome, flow, args)
    return _report_text(outcome, flow, args)


async def _run_simulated(bundle: Bundle, handlers: list[StepHandler], flow: Flow,
                         context: dict[str, Any], resumes: list[Any],
                         args: argparse.Namespace) -> RunOutcome:
    from flowmonkey.engine import EngineOptions
    from flowmonkey.settings import vault_from_env
    from flowmonkey.testing import TestHarness

    started = time.perf_counter()
    harness = TestHarness(handlers=handlers, flows=bundle.flows, tables=bundle.tables,
                          options=EngineOptions(record_history=True), vault=vault_from_env())
    async with harness:
        execution: Execution | None = None
        timed_out = False
        try:
            async with asyncio.timeout(args.timeout_s):
                result = await harness.run(flow.id, context, tenant_id=args.tenant,
                                           flow_version=flow.version, allow_unpublished=True)
                execution = result.execution
                while _signal_wait(execution) and resumes:
                    assert execution.resume_token is not None
                    execution = await harness.resume(execution.id, execution.resume_token,
                                                     resumes.pop(0))
        except TimeoutError:
            timed_out = True
        execution_id = execution.id if execution is not None else next(
            (e.execution_id for e in harness.events if e.type == "execution.created"), None)
        if execution_id is None:
            raise CliError(f"the execution did not start within {args.timeout_s:g} s",
                           exit_code=EXIT_FAILED)
        final = await harness.engine.get(execution_id)
        assert final is not None
        events = timeline_events(execution_id, harness.events)
    return RunOutcome(final, events, timed_out, time.perf_counter() - started)


async def _run_real_time(bundle: Bundle, handlers: list[StepHandler], flow: Flow,
                         context: dict[str, Any], resumes: list[Any],
                         args: argparse.Namespace) -> RunOutcome:
    from flowmonkey.engine import Engine, EngineOptions
    from flowmonkey.events.dispatcher import EventDispatcher
    from flowmonkey.settings import vault_from_env

    started = time.perf_counter()
    seen: list[Event] = []
    changed = asyncio.Event()

    def collect(event: Event) -> None:
        seen.append(event)
        changed.set()

    dispatcher = EventDispatcher(mode="sync")
    dispatcher.on("*", collect)
    engine = Engine(flows=bundle.flows, handlers=handlers,
                    options=EngineOptions(record_history=True), dispatcher=dispatcher,
                    tables=bundle.tables, vault=vault_from_env())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout_s
    async with engine:
        created = await engine.create(flow.id, context, tenant_id=args.tenant,
                                      flow_version=flow.version, allow_unpublished=True)
        execution_id = created.execution.id
        timed_out = False
        while True:
            changed.clear()
            execution = await engine.get(execution_id)
            assert execution is not None
            if _signal_wait(execution) and resumes:
                assert execution.resume_token is not None
                await engine.resume(execution_id, execution.resume_token, resumes.pop(0))
                continue
            if execution.is_terminal or _signal_wait(execution):
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                timed_out = True
                break
            try:
                async with asyncio.timeout(min(remaining, 0.5)):
                    await changed.wait()
            except TimeoutError:
                pass
        final = await engine.get(execution_id)
        assert final is not None
    events = timeline_events(execution_id, seen)
    return RunOutcome(final, events, timed_out, time.perf_counter() - started)


def _signal_wait(execution: Execution) -> bool:
    return execution.status.value == "waiting" and execution.resume_token is not None


def _exit_code(outcome: RunOutcome) -> int:
    execution = outcome.execution
    if execution.status.value == "completed":
        return EXIT_OK
    if _signal_wait(execution):
        return EXIT_WAITING
    return EXIT_FAILED


def _report_text(outcome: RunOutcome, flow: Flow, args: argparse.Namespace) -> int:
    execution = outcome.execution
    mode = "real time" if args.real_time else "simulated time"
    tenant = f" | tenant {execution.tenant_id}" if execution.tenant_id else ""
    print(f"flow {flow.ref} | execution {execution.id}{tenant} | {mode}")
    print()
    for line in format_timeline(execution.id, outcome.events):
        print(line)
    own = [e for e in outcome.events if e.execution_id == execution.id]
    span = (own[-1].timestamp_ms - own[0].timestamp_ms) / 1000 if own else 0.0
    print()
    print(f"status:  {execution.status.value}   ({execution.step_count} steps, "
          f"{span:.3f} s execution time, {outcome.wall_s:.2f} s wall)")
    print("context:")
    for line in pretty(execution.context).splitlines():
        print(f"  {line}")
    print(f"error:   {error_text(execution)}")
    _print_input_hint(execution, args)
    code = _exit_code(outcome)
    if outcome.timed_out and not execution.is_terminal and code != EXIT_WAITING:
        print(f"error: the execution is still {execution.status.value} after "
              f"{args.timeout_s:g} s (raise --timeout-s"
              + ("" if args.real_time else ", or look for a handler that never returns")
              + ")", file=sys.stderr)
        return EXIT_FAILED
    if code == EXIT_WAITING:
        _print_resume_help(execution, args)
    return code


def _print_input_hint(execution: Execution, args: argparse.Namespace) -> None:
    """On stderr: how to give the context a step's input selector found missing."""
    err = execution.error
    if err is None or not is_missing_input(err.message):
        return
    if args.input is None and args.input_file is None:
        print("hint: the execution started with an empty context; give its initial "
              "context with --input JSON or --input-file PATH (a JSON or YAML object)",
              file=sys.stderr)
    else:
        print("hint: the initial context given with --input/--input-file lacks what step "
              f"{err.step_id!r} reads; add it there", file=sys.stderr)


def _print_resume_help(execution: Execution, args: argparse.Namespace) -> None:
    step = execution.current_step_id
    reason = f" ({execution.wait_reason})" if execution.wait_reason else ""
    print()
    print(f"waiting for a signal at step {step!r}{reason}")
    print(f"resume token: {execution.resume_token}")
    print("to resume: this run kept its state in memory, so run it again with the "
          "signal's data, e.g.")
    argv = list(getattr(args, "argv", None) or ["run", args.flow_file])
    print("  " + shlex.join(["flowmonkey", *argv, "--resume", '{"approved": true}']))
    print("(repeat --resume for each signal wait; in Python: "
          "await engine.resume(execution_id, resume_token, data))")


def _report_json(outcome: RunOutcome, flow: Flow, args: argparse.Namespace) -> int:
    execution = outcome.execution
    t0 = outcome.events[0].timestamp_ms if outcome.events else 0
    error = execution.error.model_dump(mode="json") if execution.error else None
    doc = {
        "flow": flow.ref,
        "executionId": execution.id,
        "tenantId": execution.tenant_id,
        "status": execution.status.value,
        "context": execution.context,
        "error": error,
        "resumeToken": execution.resume_token if _signal_wait(execution) else None,
        "timedOut": outcome.timed_out and not execution.is_terminal,
        "stepCount": execution.step_count,
        "events": [event_json(e, t0) for e in outcome.events],
    }
    print(json.dumps(doc, indent=2, default=str, ensure_ascii=False))
    _print_input_hint(execution, args)
    code = _exit_code(outcome)
    if outcome.timed_out and code == EXIT_OK:
        return EXIT_FAILED
    return code


# --------------------------------------------------------------------------- validate


def cmd_validate(args: argparse.Namespace) -> int:
    extra: list[StepHandler] = []
    for spec in args.handlers:
        extra.extend(load_handlers_spec(spec))
    failures = 0
    for spec in args.flow_files:
        failures += _validate_one(spec, extra)
    total = len(args.flow_files)
    if failures:
        print(f"{failures} of {total} file(s) invalid", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"all {total} file(s) valid")
    return EXIT_OK


def _validate_one(spec: str, extra: Sequence[StepHandler]) -> int:
    try:
        bundle = load_flow_source(spec, all_handlers(extra, allow_private_http=False))
    except CliError as exc:
        message = str(exc)
        print(f"FAIL {message if message.startswith(spec) else f'{spec}: {message}'}",
              file=sys.stderr)
        return 1
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
    return 1 if bad else 0
