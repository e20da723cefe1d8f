"""Shared pieces of the fault-injection suite: a tiny flow, an engine on a durable
embedded log, and the frames of a segment as they were before a fault."""

from __future__ import annotations

import struct
from pathlib import Path

from flowmonkey import Engine, Result, handler
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log import EmbeddedLog
from flowmonkey.model.result import StepResult

PREFIX = "flowmonkey"
COMMANDS = f"{PREFIX}.commands"
EVENTS = f"{PREFIX}.events"


@handler("fault-step")
async def fault_step(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id})


TINY = {
    "id": "tiny", "version": "1", "initialStepId": "a",
    "steps": {
        "a": {"type": "fault-step", "outputKey": "a", "transitions": {"onSuccess": "b"}},
        "b": {"type": "fault-step", "outputKey": "b", "transitions": {"onSuccess": None}},
    },
}


def engine_on(data_dir: Path, partitions: int = 1) -> Engine:
    return Engine(flows=[TINY], handlers=[fault_step],
                  log=EmbeddedLog(path=data_dir, partitions=partitions, fsync=False))


def segment_files(data_dir: Path, topic: str, partition: int = 0) -> list[Path]:
    return sorted((data_dir / topic / str(partition)).glob("*.log"))


def frame_starts(path: Path) -> list[int]:
    """Where each record's frame (``length u32 | crc32 u32 | payload``) starts in
    ``path``, read while it is intact (parsed here, not by the code under test)."""
    data = path.read_bytes()
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        (length,) = struct.unpack_from("<I", data, pos)
        pos += 8 + length
    assert pos == len(data), f"{path} does not end on a frame boundary"
    return starts


def placeholder_bytes(path: Path) -> int:
    """Bytes of the placeholder frames ``log repair`` wrote in ``path`` (a segment, or
    a directory: all segments under it) at the offsets of records it lost."""
    from flowmonkey.log._embedded_repair import LOST_RECORD_HEADER

    marker = LOST_RECORD_HEADER.encode()
    files = sorted(path.rglob("*.log")) if path.is_dir() else [path]
    total = 0
    for file in files:
        if not file.name[:20].isdigit():
            continue
        data = file.read_bytes()
        pos = 0
        while pos + 8 <= len(data):  # frame by frame, up to damage if there is any
            (length,) = struct.unpack_from("<I", data, pos)
            if data[pos + 8 : pos + 8 + length].endswith(marker):
                total += 8 + length
            pos += 8 + length
    return total
