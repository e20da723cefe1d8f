"""``flowmonkey run``: run one flow, print its timeline."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowmonkey.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_WAITING,
    Bundle,
    CliError,
    all_handlers,
    flow_problems,
    load_flow_source,
    load_handlers_spec,
    parse_json_text,
    read_input,
)
from flowmonkey.cli.format import (
    error_text,
    event_json,
    format_timeline,
    pretty,
    timeline_events,
)
from flowmonkey.cli.options import (
    add_command,
    add_handlers_option,
    add_input_options,
    add_private_http_option,
)
from flowmonkey.kernel.inputs import is_missing_input

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
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

def register_run(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "run", help="run one flow and print its timeline",
                    description="Run one flow in this process and print the execution's "
                                "timeline, final status, context and error.",
                    epilog=RUN_EPILOG)
    p.add_argument("flow_file", metavar="FLOW_FILE", help="flow file (.json/.yaml/.py) or "
                   "module[:attribute]")
    add_input_options(p)
    p.add_argument("--flow", metavar="FLOW_ID", help="which flow to run when the file has "
                   "several (default: the first)")
    add_handlers_option(p)
    p.add_argument("--tenant", metavar="T", help="tenant id of the execution")
    p.add_argument("--timeout-s", metavar="N", type=float, default=30.0,
                   help="give up after N wall-clock seconds (default 30)")
    p.add_argument("--real-time", action="store_true",
                   help="run on the wall clock with a real Engine (waits really wait)")
    p.add_argument("--resume", metavar="JSON", action="append", default=[],
                   help="when the flow waits for a signal, resume it with this data; "
                        "repeat for several waits")
    add_private_http_option(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON document instead of the text report")
    p.set_defaults(func=cmd_run)


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
