"""The log contract, run against the embedded log in memory and on disk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowmonkey.log import EmbeddedLog, Log, _disk_columns
from tests.contract.log_contract import LogContract


class TestEmbeddedLogInMemory(LogContract):
    @pytest.fixture
    async def log(self) -> AsyncIterator[Log]:
        async with EmbeddedLog() as log:
            yield log


class TestEmbeddedLogOnDisk(LogContract):
    @pytest.fixture
    async def log(self, tmp_path: Path) -> AsyncIterator[Log]:
        # a tiny segment size so that the contract also runs across segment rolls
        async with EmbeddedLog(tmp_path / "data", segment_bytes=256) as log:
            yield log


class TestEmbeddedLogOnDiskReadBack(LogContract):
    """On disk, with only the newest record of each partition kept in memory: every
    other read comes back from the segments."""

    @pytest.fixture
    async def log(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Log]:
        monkeypatch.setattr(_disk_columns, "DEFAULT_WINDOW_BYTES", 1)
        async with EmbeddedLog(tmp_path / "data", segment_bytes=256) as log:
            yield log
