"""Workers on a real Kafka broker: two Workers (each with its own clients) race for
the jobs the processors offer; every job is completed exactly once. And the
``flowmonkey worker`` command as a process: it runs jobs, and on SIGTERM stops
gracefully with exit code 0."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from pathlib import Path

import pytest

from flowmonkey import Engine, ExecutionStatus, HandlerParams, Result, StepResult, Worker, handler
from flowmonkey.events import names as n
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.metrics import Metrics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FLOWMONKEY = str(Path(sys.executable).parent / "flowmonkey")
JOBS = 20

ran: list[tuple[str, str]] = []  # (job id, worker id)


@handler("export", stateful=True, heartbeat_ms=2_000)
async def export(p: HandlerParams) -> StepResult:
    assert p.job is not None
    await p.job.checkpoint({"half": True})
    ran.append((p.job.id, p.execution.id))
    return Result.success({"n": p.input["n"]})


FLOW = {"id": "jobs", "version": "1", "initialStepId": "x",
        "steps": {"x": {"type": "export", "outputKey": "exported",
                        "transitions": {"onSuccess": None}}}}


def kafka_log(bootstrap: str, prefix: str, name: str) -> KafkaLog:
    return KafkaLog(bootstrap, topic_prefix=prefix, partitions=3,
                    client_id=f"{prefix}{name}")


async def wait_all(engine: Engine, ids: list[str]) -> None:
    for execution_id in ids:
        execution = await engine.wait(execution_id, 60, until={
            ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})
        assert execution.status == ExecutionStatus.COMPLETED, execution.error


async def test_two_workers_race_for_the_jobs_and_each_is_completed_once(
        kafka_bootstrap: str, kafka_prefix: str) -> None:
    ran.clear()
    engine = Engine(flows=[FLOW], handlers=[export], workers=0, metrics=Metrics(),
                    log=kafka_log(kafka_bootstrap, kafka_prefix, "engine"),
                    processor_group=f"{kafka_prefix}processor")
    async with engine:
        metrics = [Metrics(), Metrics()]
        workers = [Worker(log=kafka_log(kafka_bootstrap, kafka_prefix, f"w{i}"),
                          handlers=[export], concurrency=3, worker_id=f"w{i}",
                          metrics=metrics[i], grace_s=5) for i in range(2)]
        async with workers[0], workers[1]:
            ids = [(await engine.create("jobs", {"n": i})).execution.id for i in range(JOBS)]
            await wait_all(engine, ids)
        for execution_id in ids:
            events = await engine.history(execution_id)
            types = collections.Counter(e.type for e in events)
            assert types[n.JOB_COMPLETED] == 1
            assert types[n.JOB_CLAIMED] == 1  # a lost race claims nothing
            execution = await engine.get(execution_id)
            assert execution is not None
            assert execution.context["exported"] == {"n": execution.context["n"]}
        assert len(ran) == JOBS
        assert len({job_id for job_id, _ in ran}) == JOBS  # no job ran twice
        claimed = sum(m.jobs_claimed._value.get() for m in metrics)
        completed = sum(m.jobs_completed._value.get() for m in metrics)
        assert (claimed, completed) == (JOBS, JOBS)


APP = '''
import asyncio
from flowmonkey import HandlerParams, Result, StepResult, handler

@handler("export", stateful=True, heartbeat_ms=1_000)
async def export(p: HandlerParams) -> StepResult:
    assert p.job is not None
    if p.input.get("hold"):
        while True:  # until the worker is stopped
            await asyncio.sleep(0.05)
            await p.job.assert_active()
    await p.job.checkpoint({"done": True})
    return Result.success({"by": "the worker process"})

handlers = [export]
flows = []
'''


async def _lines(stream: asyncio.StreamReader | None, into: list[str]) -> None:
    assert stream is not None
    while line := await stream.readline():
        into.append(line.decode())


async def test_the_worker_command_runs_jobs_and_stops_gracefully_on_sigterm(
        kafka_bootstrap: str, kafka_prefix: str, tmp_path: Path) -> None:
    app = tmp_path / "jobs_app.py"
    app.write_text(APP)
    engine = Engine(flows=[FLOW], handlers=[export], workers=0, metrics=Metrics(),
                    log=kafka_log(kafka_bootstrap, kafka_prefix, "engine"),
                    processor_group=f"{kafka_prefix}processor")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    env.update(FLOWMONKEY_KAFKA_BOOTSTRAP=kafka_bootstrap, FLOWMONKEY_TOPIC_PREFIX=kafka_prefix)
    async with engine:
        process = await asyncio.create_subprocess_exec(
            FLOWMONKEY, "worker", "--app", str(app), "--worker-id", "cli-worker",
            "--grace", "0.2", "--progress-every", "0.5", env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out: list[str] = []
        err: list[str] = []
        readers = [asyncio.ensure_future(_lines(process.stdout, out)),
                   asyncio.ensure_future(_lines(process.stderr, err))]
        try:
            done = (await engine.create("jobs", {"n": 1})).execution.id
            await wait_all(engine, [done])
            finished = await engine.get(done)
            assert finished is not None
            assert finished.context["exported"] == {"by": "the worker process"}

            held = (await engine.create("jobs", {"n": 2, "hold": True})).execution.id
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while n.JOB_CLAIMED not in {e.type for e in await engine.history(held)}:
                assert loop.time() < deadline, "the held job is never claimed"
                await asyncio.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                code = await process.wait()
                await asyncio.gather(*readers)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert code == 0, "".join(err)
        text = "".join(out)
        assert "worker: cli-worker on Kafka" in text
        assert "worker: stopped" in text
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            types = [e.type for e in await engine.history(held)]
            if n.JOB_RELEASED in types:
                break
            assert asyncio.get_running_loop().time() < deadline, types
            await asyncio.sleep(0.05)
        # released, not failed: another worker may take it at once
        assert n.JOB_FAILED not in types
        execution = await engine.get(held)
        assert execution is not None
        assert execution.status == ExecutionStatus.WAITING
