"""The partitioner is Kafka's default, so any Kafka client routes keys the same way."""

from __future__ import annotations

import pytest

from flowmonkey.log.partitioner import murmur2, partition_for


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # org.apache.kafka.common.utils.UtilsTest#testMurmur2
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"", 275646681),
    ],
)
def test_murmur2_matches_the_java_client(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_for_is_the_positive_hash_modulo_the_partition_count() -> None:
    for key in (b"21", b"foobar", b"a-little-bit-long-string", b""):
        assert partition_for(key, 7) == (murmur2(key) & 0x7FFFFFFF) % 7


def test_partition_for_is_stable_and_in_range() -> None:
    keys = [f"execution-{i}".encode() for i in range(500)]
    for partitions in (1, 3, 4, 16):
        first = [partition_for(key, partitions) for key in keys]
        partition_for.cache_clear()
        again = [partition_for(key, partitions) for key in keys]

        assert first == again
        assert all(0 <= p < partitions for p in first)


def test_partition_for_spreads_keys_over_every_partition() -> None:
    keys = [f"execution-{i}".encode() for i in range(500)]

    assert {partition_for(key, 8) for key in keys} == set(range(8))
