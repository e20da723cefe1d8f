"""What a Kafka topic is (partitions, settings), read and changed without ever making one.

A metadata request that names a missing topic makes the broker create it when
``auto.create.topics.enable=true`` (Kafka's default), with the broker's defaults: one
partition, 7-day retention, no compaction. aiokafka asks for exactly that on every
metadata request (``allow_auto_topic_creation=True``), its admin client's
``describe_topics`` included. So every look at a topic here sends its own metadata
request with ``allow_auto_topic_creation=False`` (the flag exists from Metadata v4;
Kafka 4 speaks nothing older), and settings come from DescribeConfigs, which never
creates anything.

Changing settings uses AlterConfigs, the request aiokafka has. It *replaces* a topic's
whole set of overrides, so :func:`alter_topic_configs` sends the overrides the topic
already has together with the changes; a sensitive override (whose value the broker
never returns) would be wiped, so such a topic is refused instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.protocol.metadata import MetadataRequest

from flowmonkey.errors import LogError

__all__ = [
    "TopicFacts",
    "alter_topic_configs",
    "describe_topic_facts",
    "topic_metadata",
]

_UNKNOWN_TOPIC_OR_PARTITION = 3
_LEADER_NOT_AVAILABLE = 5
_TOPIC_AUTHORIZATION_FAILED = 29
#: DescribeConfigs ``config_source``: set on the topic itself (an override)
_TOPIC_OVERRIDE = 1
_CONFIGS_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class TopicFacts:
    """A topic as the cluster has it: its partition count, every setting's effective
    value (the topic's override, else the broker's default) and which are overrides."""

    name: str
    partitions: int
    configs: Mapping[str, str | None]
    overrides: frozenset[str] = frozenset()

    def config(self, name: str) -> str | None:
        return self.configs.get(name)


async def topic_metadata(admin: Any, topics: Sequence[str]) -> list[dict[str, Any]]:
    """The metadata of ``topics`` (one dict per topic: ``topic``, ``error_code``,
    ``partitions``), asking the broker not to create the missing ones."""
    # _send_request is aiokafka's own way to send one request to some broker; its
    # public describe_topics cannot turn auto-creation off
    response = await admin._send_request(
        MetadataRequest(list(topics), allow_auto_topic_creation=False))
    metas: list[dict[str, Any]] = response.to_object()["topics"]
    return metas


async def describe_topic_facts(admin: Any, topics: Sequence[str]) -> dict[str, TopicFacts | None]:
    """Each topic's facts, or None for a topic that does not exist. Creates nothing."""
    if not topics:
        return {}
    found: dict[str, int] = {}
    for meta in await topic_metadata(admin, topics):
        name, code = meta["topic"], meta["error_code"]
        if code == _UNKNOWN_TOPIC_OR_PARTITION:
            continue
        if code not in (0, _LEADER_NOT_AVAILABLE) or not meta["partitions"]:
            raise LogError(f"could not read the metadata of topic {name!r}: Kafka error "
                           f"code {code}", topic=name, code="LOG_TOPIC_METADATA")
        found[name] = len(meta["partitions"])
    facts: dict[str, TopicFacts | None] = dict.fromkeys(topics)
    if found:
        configs = await _describe_configs_soon(admin, list(found))
        for name, count in found.items():
            values, overrides = configs[name]
            facts[name] = TopicFacts(name, count, values, frozenset(overrides))
    return facts


class _NotKnownYet(Exception):
    """A broker has not yet learnt of a topic that the metadata already shows."""


async def _describe_configs_soon(
    admin: Any, topics: Sequence[str]
) -> dict[str, tuple[dict[str, str | None], set[str]]]:
    """:func:`_describe_configs`, waiting (up to ``_CONFIGS_WAIT_S``) for a broker that
    does not know a just-created topic yet: the metadata request and DescribeConfigs
    may go to different brokers, and a new topic reaches each one a moment apart."""
    deadline = time.monotonic() + _CONFIGS_WAIT_S
    while True:
        try:
            return await _describe_configs(admin, topics)
        except _NotKnownYet as exc:
            if time.monotonic() > deadline:
                raise LogError(f"could not read the settings of topic {exc}: Kafka says it "
                               "does not exist, though its metadata shows it",
                               topic=str(exc), code="LOG_TOPIC_METADATA") from None
            await asyncio.sleep(0.1)


async def _describe_configs(
    admin: Any, topics: Sequence[str]
) -> dict[str, tuple[dict[str, str | None], set[str]]]:
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics])
    out: dict[str, tuple[dict[str, str | None], set[str]]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            name = resource["resource_name"]
            code = resource["error_code"]
            if code == _UNKNOWN_TOPIC_OR_PARTITION:
                raise _NotKnownYet(name)
            if code != 0:
                why = resource["error_message"] or f"Kafka error code {code}"
                if code == _TOPIC_AUTHORIZATION_FAILED:
                    why += (" (FlowMonkey checks its topics' settings at start: give its "
                            "user the DescribeConfigs permission on them)")
                raise LogError(f"could not read the settings of topic {name!r}: {why}",
                               topic=name, code="LOG_TOPIC_METADATA")
            values: dict[str, str | None] = {}
            overrides: set[str] = set()
            for entry in resource["config_entries"]:
                values[entry["config_names"]] = entry["config_value"]
                # config_source from DescribeConfigs v1 (Kafka 4 speaks no older one)
                if entry.get("config_source") == _TOPIC_OVERRIDE:
                    overrides.add(entry["config_names"])
            out[name] = (values, overrides)
    missing = [name for name in topics if name not in out]
    if missing:
        raise LogError(f"Kafka returned no settings for topics {missing}",
                       code="LOG_TOPIC_METADATA")
    return out


async def alter_topic_configs(admin: Any, facts: TopicFacts, changes: Mapping[str, str]) -> None:
    """Set ``changes`` on the topic, keeping its other overrides (see the module
    docstring: AlterConfigs replaces them all)."""
    kept: dict[str, str] = {}
    for name in sorted(facts.overrides):
        value = facts.configs.get(name)
        if name in changes:
            continue
        if value is None:
            raise LogError(
                f"topic {facts.name!r} has a sensitive setting {name!r} whose value Kafka "
                "does not return: changing its settings here would erase it; change them "
                "with kafka-configs.sh --alter --add-config instead", topic=facts.name,
                code="LOG_TOPIC_SETTINGS")
        kept[name] = value
    resource = ConfigResource(ConfigResourceType.TOPIC, facts.name, {**kept, **changes})
    responses = await admin.alter_configs([resource])
    for response in responses:
        for result in response.to_object()["resources"]:
            code, message, name = (result["error_code"], result["error_message"],
                                   result["resource_name"])
            if code != 0:
                why = message or f"error code {code}"
                if code == _TOPIC_AUTHORIZATION_FAILED:
                    why += " (the user needs the AlterConfigs permission on the topic)"
                raise LogError(f"Kafka refused to change the settings of topic {name!r}: "
                               f"{why}", topic=name, code="LOG_TOPIC_SETTINGS")
