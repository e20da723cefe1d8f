"""Generic code asks the log what it can do (``Log.capabilities``), never its class:
a log's capabilities alone choose the topic partitions, whether events carry their
decoded objects, whether topics are verified, and group processors, group projectors
or a tail consumer instead of per-partition readers. The generic modules hold no
``isinstance`` on a log class and no ``getattr`` of a log attribute."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

import flowmonkey
from flowmonkey import Engine, Result, handler
from flowmonkey.errors import LogError
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log import EmbeddedLog, KafkaLog, LogCapabilities
from flowmonkey.log.base import OutRecord, Position
from flowmonkey.log.decoded import DecodedOutRecord
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult
from flowmonkey.projections.memory import MemoryProjection
from flowmonkey.projections.projector import Projector
from flowmonkey.projections.service import ProjectorService


@handler("noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id})


FLOW = {
    "id": "capable", "version": "1", "initialStepId": "a",
    "steps": {"a": {"type": "noop", "outputKey": "a", "transitions": {"onSuccess": None}}},
}


class ShapedLog(EmbeddedLog):
    """An embedded log that claims the given capabilities (and counts the records
    appended with their decoded objects)."""

    def __init__(self, capabilities: LogCapabilities) -> None:
        super().__init__(partitions=4)
        self._claimed = capabilities
        self.decoded_appends = 0

    @property
    def capabilities(self) -> LogCapabilities:
        return self._claimed

    async def append(self, records: Sequence[OutRecord], *, commit_group: str | None = None,
                     commit_offsets: Mapping[tuple[str, int], int] | None = None,
                     ) -> list[Position]:
        self.decoded_appends += sum(isinstance(r, DecodedOutRecord) and r.decoded is not None
                                   for r in records)
        return await super().append(records, commit_group=commit_group,
                                    commit_offsets=commit_offsets)


def test_the_logs_say_what_they_can_do() -> None:
    embedded = EmbeddedLog(partitions=3).capabilities
    assert embedded == LogCapabilities(default_partitions=3, keeps_decoded=True)
    kafka = KafkaLog("localhost:9092", partitions=7).capabilities  # nothing connects
    assert kafka == LogCapabilities(default_partitions=7, consumer_groups=True, tail=True,
                                    shared_topics=True)


@pytest.mark.parametrize("keeps_decoded", [True, False])
async def test_default_partitions_and_keeps_decoded_drive_the_engine(
        keeps_decoded: bool) -> None:
    log = ShapedLog(LogCapabilities(default_partitions=3, keeps_decoded=keeps_decoded))
    async with Engine(flows=[FLOW], handlers=[noop], log=log) as engine:
        created = await engine.create("capable", {})
        done = await engine.wait(created.execution.id, timeout_s=10)
        assert done.status is ExecutionStatus.COMPLETED
        assert engine.partitions == 3  # not the 4 the embedded log was built with
        assert await log.partitions_for(engine.topics.events) == 3
    assert (log.decoded_appends > 0) is keeps_decoded


@pytest.mark.parametrize(("capabilities", "chosen"), [
    (LogCapabilities(shared_topics=True), "verify_topics"),
    (LogCapabilities(consumer_groups=True), "GroupProcessors"),
    (LogCapabilities(tail=True), "the projector's tail"),
])
async def test_a_claimed_kafka_capability_chooses_the_kafka_part(
        capabilities: LogCapabilities, chosen: str) -> None:
    """The embedded log's class is not what decides: claiming a capability picks the
    part that needs it (which then finds the log is no KafkaLog)."""
    engine = Engine(flows=[FLOW], handlers=[noop], log=ShapedLog(capabilities))
    with pytest.raises(LogError, match=chosen):
        await engine.start()
    if engine.projector is not None:  # a start that failed leaves it to its caller
        await engine.projector.stop()
    await engine.log.close()


async def test_a_tail_runs_the_projector_as_one_consumer_and_none_per_partition() -> None:
    log = ShapedLog(LogCapabilities(tail=True))
    await log.start()
    projector = Projector(log, "t.events", 2, MemoryProjection(), lambda events, r: None)
    with pytest.raises(LogError, match="the projector's tail"):
        await projector.start()
    await log.close()


@pytest.mark.parametrize(("capabilities", "refused"), [
    (LogCapabilities(default_partitions=2), None),
    (LogCapabilities(default_partitions=2, consumer_groups=True), "GroupProjector"),
])
async def test_the_projector_service_chooses_by_capabilities(
        capabilities: LogCapabilities, refused: str | None) -> None:
    log = ShapedLog(capabilities)
    service = ProjectorService(log, MemoryProjection())
    if refused is None:
        await service.start()
        assert service.partitions == 2
        await service.stop()
    else:
        with pytest.raises(LogError, match=refused):
            await service.start()


def test_a_shared_topics_log_is_left_to_create_its_topics_elsewhere() -> None:
    """A projector service on a log whose topics others create does not create them
    (the events topic is then missing on this embedded log)."""
    import asyncio

    async def run() -> None:
        service = ProjectorService(ShapedLog(LogCapabilities(shared_topics=True)),
                                   MemoryProjection())
        with pytest.raises(LogError):
            await service.start()

    asyncio.run(run())


# ---------------------------------------------------------------- no branching on the class

ROOT = Path(flowmonkey.__file__).parent
GENERIC = [ROOT / "engine.py", *sorted((ROOT / "runtime").glob("*.py")),
           ROOT / "projections" / "projector.py", ROOT / "projections" / "service.py",
           ROOT / "processors" / "partition.py"]
LOG_CLASSES = {"KafkaLog", "EmbeddedLog"}


def _names(node: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _is_log(node: ast.expr) -> bool:
    """An expression naming a log: ``log``, ``log_``, ``self.log``, ``x._log``."""
    last = node.attr if isinstance(node, ast.Attribute) else \
        node.id if isinstance(node, ast.Name) else ""
    return last.strip("_") == "log" or last.endswith("_log")


def _branches_on_the_log(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        if node.func.id == "isinstance" and len(node.args) == 2 and \
                _names(node.args[1]) & LOG_CLASSES:
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
        if node.func.id in ("getattr", "hasattr") and node.args and _is_log(node.args[0]):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_generic_code_does_not_branch_on_the_log_class() -> None:
    assert (ROOT / "runtime").is_dir()
    found = [line for path in GENERIC for line in _branches_on_the_log(path)]
    assert found == []


def test_the_check_sees_a_branch_on_the_class(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("if isinstance(self.log, (KafkaLog, int)):\n    pass\n"
                      "x = getattr(self.log, 'keeps_decoded', False)\n"
                      "y = getattr(answer, 'fm_execution', None)\n")
    assert len(_branches_on_the_log(sample)) == 2
