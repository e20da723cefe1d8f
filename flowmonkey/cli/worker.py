"""``flowmonkey worker``: run the jobs of stateful handlers (a :class:`~flowmonkey.jobs.Worker`
on Kafka) until SIGINT or SIGTERM, then stop gracefully."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from flowmonkey.cli.common import Bundle, CliError, load_apps
from flowmonkey.cli.options import (
    add_app_options,
    add_command,
    add_progress_option,
    add_service_options,
    add_settings_options,
)
from flowmonkey.cli.service import (
    apply_gc_option,
    configure_logging,
    run_until_stopped,
    say,
    stop_on_signals,
)
from flowmonkey.cli.settings import log_unreachable, serving_metrics, settings_from_args

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers
    from flowmonkey.handlers.base import StepHandler
    from flowmonkey.jobs.worker import Worker
    from flowmonkey.settings import Settings

DEFAULT_CONCURRENCY = 4
DEFAULT_GRACE_S = 30.0

EPILOG = """\
A worker claims the jobs of the stateful handlers it is given (`@handler("export",
stateful=True)`): the steps of those handlers do not run in the processors, they wait
for a worker. It heartbeats while a job runs; if it dies, the job's lease runs out
(three heartbeat intervals) and another worker claims it again, starting from the
job's last checkpoint. Any number of workers may run, on any machines: a claim is
decided on the log, so exactly one of them gets each job.

On SIGINT or SIGTERM it stops claiming, lets running jobs finish for --grace
seconds, then releases the rest, so other workers take them at once.

examples:
  export FLOWMONKEY_KAFKA_BOOTSTRAP=localhost:9092
  flowmonkey worker --app myapp.jobs:app
  flowmonkey worker --app ./jobs.py --types export,import --concurrency 8

exit codes: 0 stopped by SIGINT/SIGTERM, 1 Kafka could not be used (or reading the
            jobs topic failed), 2 bad input (no Kafka, no stateful handler, a bad option)
"""


def register_worker(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "worker", help="run workers for stateful (job) handlers",
        description="Claim and run the jobs of the stateful handlers given with --app, "
                    "until SIGINT or SIGTERM.",
        epilog=EPILOG)
    add_app_options(parser)
    parser.add_argument("--types", metavar="T,...",
                        help="claim only jobs of these handler types (default: every "
                             "stateful handler's)")
    parser.add_argument("--concurrency", metavar="N", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"jobs run at once (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--worker-id", metavar="ID",
                        help="this worker's name in claims (default: host, pid and a "
                             "random suffix)")
    parser.add_argument("--grace", metavar="SECONDS", type=float, default=DEFAULT_GRACE_S,
                        help="on SIGINT/SIGTERM, how long running jobs may finish before "
                             f"they are released (default {DEFAULT_GRACE_S:g})")
    add_progress_option(parser)
    add_service_options(parser)
    add_settings_options(parser, partitions=False, postgres=False, data_dir=False,
                         embedded=False, creates_topics=False)
    parser.set_defaults(func=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if settings.log_kind != "kafka":
        raise CliError(
            "workers run on Kafka: set FLOWMONKEY_KAFKA_BOOTSTRAP or pass --kafka-bootstrap",
            hint="on one machine without Kafka, `flowmonkey dev` runs the jobs in its own "
                 "process on the embedded log")
    if args.progress_every <= 0:
        raise CliError(f"--progress-every must be more than 0 seconds, not {args.progress_every}")
    if args.concurrency < 1:
        raise CliError(f"--concurrency must be at least 1, not {args.concurrency}")
    if args.grace < 0:
        raise CliError(f"--grace must be 0 or more seconds, not {args.grace}")
    if args.worker_id is not None and not args.worker_id.strip():
        raise CliError("--worker-id must not be empty")
    bundle = load_apps(args.app, args.flows_dir)
    stateful = [h for h in bundle.handlers if h.metadata.stateful]
    if not stateful:
        raise CliError("no stateful handler to run: give --app MODULE whose `handlers` "
                       "include one (@handler('type', stateful=True))")
    types = _types(args.types, stateful)
    configure_logging(args, settings)
    return asyncio.run(_Worker(args, settings, bundle, stateful, types).run())


def _types(given: str | None, stateful: list[StepHandler]) -> list[str] | None:
    if given is None:
        return None
    types = [t.strip() for t in given.split(",") if t.strip()]
    known = {h.metadata.type for h in stateful}
    unknown = [t for t in types if t not in known]
    if not types or unknown:
        raise CliError(f"--types: {', '.join(unknown) or 'none given'}: not among the "
                       f"stateful handlers ({', '.join(sorted(known))})")
    return types


def _say(text: str) -> None:
    say("worker", text)


class _Worker:
    def __init__(self, args: argparse.Namespace, settings: Settings, bundle: Bundle,
                 stateful: list[StepHandler], types: list[str] | None) -> None:
        self.args = args
        self.settings = settings
        self.bundle = bundle
        self.stateful = stateful
        self.types = types
        self.stop = asyncio.Event()

    def worker(self) -> Worker:
        from flowmonkey.handlers.registry import FlowRegistry
        from flowmonkey.jobs.worker import Worker
        from flowmonkey.settings import vault_from_env

        flows = FlowRegistry()
        for flow in self.bundle.flows:
            flows.adopt(flow)
        return Worker(log=self.settings.make_log(client_id="flowmonkey-worker"),
                      handlers=self.stateful, concurrency=self.args.concurrency,
                      types=self.types, worker_id=self.args.worker_id,
                      grace_s=self.args.grace, flows=flows, vault=vault_from_env())

    async def run(self) -> int:
        with serving_metrics(self.args, self.settings, _say):
            return await self._run()

    async def _run(self) -> int:
        from flowmonkey.errors import FlowMonkeyError

        worker = self.worker()
        _say(f"{worker.worker_id} on {self.settings.describe_log()}, job types "
             f"{', '.join(sorted(worker.types))}, {worker.concurrency} at once")
        try:
            await worker.start()
        except FlowMonkeyError as exc:
            await worker.kill()
            await worker.log.close()
            raise log_unreachable(exc, self.settings) from None
        try:
            apply_gc_option(self.args)
            return await self._serve(worker)
        finally:
            _say(f"stopping (running jobs get {self.args.grace:g}s to finish, the rest are "
                 "released)...")
            await worker.stop()
            _say("stopped")

    async def _serve(self, worker: Worker) -> int:
        stop_on_signals(self.stop)
        _say(f"following {worker.topics.jobs}; Ctrl-C to stop")

        def failure() -> str | None:
            error = worker.failure
            return None if error is None else \
                f"reading the jobs stopped: {type(error).__name__}: {error}"

        return await run_until_stopped(
            self.stop, self.args.progress_every, failure=failure,
            every_interval=lambda _span: _say(_progress_line(worker)))


def _progress_line(worker: Worker) -> str:
    m = worker.metrics

    def count(metric: object) -> int:
        return int(metric._value.get())  # type: ignore[attr-defined]

    return (f"{worker.running} running, {worker.pending} pending; so far "
            f"{count(m.jobs_claimed)} claimed, {count(m.jobs_completed)} completed, "
            f"{count(m.jobs_failed)} failed, {count(m.jobs_superseded)} superseded, "
            f"{count(m.jobs_cancelled)} cancelled, {count(m.jobs_released)} released")
