"""Placeholders that ``flowmonkey log repair`` leaves at lost records' offsets: the
processor's recovery and the projectors skip them with one summary line, not one
error per placeholder."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from flowmonkey.log import EmbeddedLog, OutRecord, TopicSpec
from flowmonkey.log.base import LOST_RECORD_HEADER, Record
from flowmonkey.projections.projector import decode_records
from tests.faults.support import EVENTS, engine_on

LOST = ((LOST_RECORD_HEADER, b""),)


def placeholder(offset: int) -> Record:
    return Record(EVENTS, 0, offset, None, b"", LOST)


def test_a_projector_skips_placeholders_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    garbage = Record(EVENTS, 0, 50, None, b"not an event")
    with caplog.at_level(logging.WARNING):
        events, skipped = decode_records([*(placeholder(o) for o in range(50)), garbage])
    assert events == []
    assert skipped == 51
    messages = [r.getMessage() for r in caplog.records]
    assert sum("placeholder" in m for m in messages) == 1
    assert sum("undecodable" in m for m in messages) == 1  # the garbage, not a placeholder
    assert "offsets 0..49" in next(m for m in messages if "placeholder" in m)


async def test_processor_recovery_skips_placeholders_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with EmbeddedLog(tmp_path, partitions=1, fsync=False) as log:
        await log.create_topics([TopicSpec(EVENTS, 1)])
        await log.append([OutRecord(EVENTS, b"", headers=LOST, partition=0)
                          for _ in range(30)])
    with caplog.at_level(logging.WARNING):
        async with engine_on(tmp_path):
            pass
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "undecodable" in m]
    assert sum("placeholder" in m and "processor" in r.name
               for r, m in zip(caplog.records, messages, strict=True)) == 1
