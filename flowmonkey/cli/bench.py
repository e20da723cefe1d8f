"""``flowmonkey bench``: run one of the benchmarks of ``bench/`` in a source checkout.

The benchmarks are scripts beside the package (``bench/`` in the repository), not part
of what ``pip install`` puts on a machine: they start test services and need the
development extras. This command finds them next to the package it runs from and runs
one with this Python, passing its options through.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from flowmonkey.cli.common import EXIT_BAD_INPUT, CliError
from flowmonkey.cli.options import add_command

if TYPE_CHECKING:
    from flowmonkey.cli.options import Subparsers

BENCHMARKS: dict[str, tuple[str, str]] = {
    "embedded": ("embedded_throughput.py",
                 "steps/s, p50/p99 step latency and peak RSS of a 5-step flow on the "
                 "memory and durable embedded log at 1, 100 and 10,000 in flight"),
    "kafka": ("kafka_throughput.py",
              "the same flow on Kafka + PostgreSQL, exactly once: steps/s, latency, "
              "projection lag, and the CPU each process spends per step"),
    "jobs": ("jobs_throughput.py",
             "one-step flows on Kafka + PostgreSQL with 2 `flowmonkey worker` processes: "
             "jobs/s, claim and job latency, and a job step's cost beside a stateless one"),
    "snapshots": ("snapshot_recovery.py",
                  "a partition's recovery time with and without a snapshot"),
    "compare": ("compare.py",
                "the 5-step flow on every setup beside DBOS (--with-dbos; `pip install "
                "dbos` first): steps/s, the ratio to DBOS and issue 15's goals"),
    "api": ("api_throughput.py",
            "`flowmonkey api` driven from load processes of its own: GETs/s, create-then-get "
            "pairs/s, p50/p99, and the API's CPU per request"),
    "waiting": ("waiting_memory.py",
                "memory of 100,000 executions parked on a signal wait: in an embedded "
                "process, a processor-only one, and one that recovered them (--breakdown: "
                "top allocation sites)"),
    "replay": ("replay_throughput.py",
               "events/s of rebuilding a partition and of `replay --verify-all`, and the "
               "memory of 100,000 executions waiting on a signal"),
}

EPILOG = """\
benchmarks:
{listing}

Each prints one JSON document on stdout and its progress on stderr. Options after the
benchmark's name go to it: `flowmonkey bench kafka --help` lists them.

examples:
  flowmonkey bench embedded --log memory --concurrency 10000 --gc tuned
  flowmonkey bench kafka --split --tune-gc
  flowmonkey bench jobs --executions 1000 --workers 2
  flowmonkey bench snapshots --events 100000 --embedded
  flowmonkey bench compare --with-dbos --in-flight 2000

exit codes: the benchmark's own; 2 when there is no such benchmark or no bench/
            directory (they ship with the source repository, not the package)
""".format(listing="\n".join(f"  {name:<10} {what}" for name, (_, what) in BENCHMARKS.items()))


def bench_dir() -> Path:
    """Where the benchmark scripts of a source checkout are: beside the package."""
    return Path(__file__).resolve().parents[2] / "bench"  # flowmonkey/cli/bench.py


def register_bench(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "bench", help="run a benchmark (from a source checkout)",
        description="Run one of the benchmarks in the repository's bench/ directory "
                    "with this Python.",
        epilog=EPILOG)
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS), metavar="BENCHMARK",
                        help="one of: " + ", ".join(BENCHMARKS))
    parser.add_argument("options", nargs=argparse.REMAINDER,
                        help="options for the benchmark (see its --help)")
    parser.set_defaults(func=run_bench, accepts_extra=True)


def run_bench(args: argparse.Namespace) -> int:
    script = bench_dir() / BENCHMARKS[args.benchmark][0]
    if not script.is_file():
        raise CliError(
            f"the benchmarks are not here ({script.parent} has no {script.name})",
            exit_code=EXIT_BAD_INPUT,
            hint="they ship with the source repository: clone it, then run `make bench` "
                 "or `flowmonkey bench` from its virtual environment")
    options = [*args.options, *getattr(args, "rest", [])]
    # the benchmark's own exit code, output and progress, as if run directly; the
    # script is one of ours, and the options are the user's own arguments to it
    command = [sys.executable, str(script), *options]
    return subprocess.run(command, check=False).returncode  # noqa: S603 - no shell
