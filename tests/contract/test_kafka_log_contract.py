"""The log contract, run against the Kafka log on a real broker, exactly once and at
least once. Every test has its own topic prefix; its topics are deleted afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowmonkey.log import Log
from flowmonkey.log.kafka import KafkaLog
from tests.contract.log_contract import LogContract

pytestmark = pytest.mark.integration


class KafkaLogContract(LogContract):
    exactly_once: bool

    @pytest.fixture
    def topic_prefix(self, kafka_prefix: str) -> str:
        return kafka_prefix.rstrip("-")

    @pytest.fixture
    async def log(self, kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[Log]:
        async with KafkaLog(
            kafka_bootstrap,
            topic_prefix=topic_prefix,
            exactly_once=self.exactly_once,
            client_id=f"{topic_prefix}.client",
        ) as log:
            yield log


class TestKafkaLogAtLeastOnce(KafkaLogContract):
    exactly_once = False


class TestKafkaLogExactlyOnce(KafkaLogContract):
    """Each append is a transaction, and its commit marker takes one offset in every
    partition it wrote: offsets grow in append order but are not dense across appends,
    which the contract allows."""

    exactly_once = True
