"""The Kafka log on a secured listener, and the replication factor of the topics it
creates, against the real test broker.

* over SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) a KafkaLog creates topics,
  appends in transactions, publishes, commits and reads back: every kind of client it
  builds connects with the same credentials (one that did not could not connect to
  this listener at all);
* an Engine runs flows end to end over SASL (group members, the projector's tail);
* a wrong password fails ``start`` at once, saying the credentials were refused,
  without showing the password; ``flowmonkey topics create`` works (and fails the
  same way) with the settings from the environment;
* the same over SASL_SSL (what most managed clusters use), trusting the test broker's
  throwaway CA through the CA file: the log, an Engine, ``flowmonkey topics create``;
  without the CA file (the system's trusted CAs only) the broker's certificate is
  refused and the error says so;
* topics get the broker's ``default.replication.factor`` by default (the log asks
  for -1), and a factor the cluster cannot meet is refused naming the topic.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from flowmonkey import Engine, Result, handler
from flowmonkey.errors import LogError
from flowmonkey.handlers.base import HandlerParams
from flowmonkey.log.base import OutRecord, TopicSpec
from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.kafka_security import KafkaSecurity
from flowmonkey.log.topics import Topics
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.model.result import StepResult
from flowmonkey.testing.services import KafkaSaslEndpoint, KafkaSaslSslEndpoint, run_async
from flowmonkey.testing.services_common import (
    ENV_KAFKA_SASL_MECHANISMS,
    ENV_KAFKA_SASL_SSL_MECHANISMS,
)

pytestmark = pytest.mark.integration

FLOWMONKEY = str(Path(sys.executable).parent / "flowmonkey")
WRONG_PASSWORD = "wrong-pw-never-shown"
ENDED = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


def _security(sasl: KafkaSaslEndpoint, mechanism: str = "PLAIN", *,
              password: str | None = None, system_trust: bool = False) -> KafkaSecurity:
    """The endpoint's protocol, user and mechanism; over SASL_SSL trusting its CA file,
    or with ``system_trust`` only the system's trusted CAs."""
    tls = isinstance(sasl, KafkaSaslSslEndpoint)
    if mechanism not in sasl.mechanisms:
        variable = ENV_KAFKA_SASL_SSL_MECHANISMS if tls else ENV_KAFKA_SASL_MECHANISMS
        pytest.fail(f"the SASL user of the test broker has no {mechanism} credentials (it "
                    f"has {', '.join(sasl.mechanisms)}): add them, and list the mechanism in "
                    f"{variable}", pytrace=False)
    cafile = sasl.cafile if isinstance(sasl, KafkaSaslSslEndpoint) and not system_trust else None
    return KafkaSecurity(protocol=sasl.protocol, sasl_mechanism=mechanism,
                         username=sasl.username, password=password or sasl.password,
                         ssl_cafile=cafile)


async def _admin(bootstrap: str, security: KafkaSecurity | None = None) -> Any:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap,
                                **(security or KafkaSecurity()).client_kwargs())
    await admin.start()
    return admin


async def _delete_over_sasl(sasl: KafkaSaslEndpoint, prefix: str) -> None:
    admin = await _admin(sasl.bootstrap, _security(sasl))
    try:
        names = [t for t in await admin.list_topics() if str(t).startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def _prefix_deleted_over(sasl: KafkaSaslEndpoint, kind: str,
                         request: pytest.FixtureRequest) -> Iterator[str]:
    prefix = f"t_{kind}_{os.urandom(4).hex()}-"
    yield prefix
    try:
        run_async(lambda: _delete_over_sasl(sasl, prefix))
    except Exception as exc:  # cleanup only: never fail a test over it
        request.node.warn(pytest.PytestWarning(f"could not delete topics {prefix}*: {exc!r}"))


@pytest.fixture
def sasl_prefix(kafka_sasl: KafkaSaslEndpoint, request: pytest.FixtureRequest
                ) -> Iterator[str]:
    """A topic prefix of this test; its topics are deleted over the SASL listener (an
    external SASL broker need not be the plain one)."""
    yield from _prefix_deleted_over(kafka_sasl, "sasl", request)


@pytest.fixture
def tls_prefix(kafka_sasl_ssl: KafkaSaslSslEndpoint, request: pytest.FixtureRequest
               ) -> Iterator[str]:
    """A topic prefix of this test; its topics are deleted over the SASL_SSL listener."""
    yield from _prefix_deleted_over(kafka_sasl_ssl, "tls", request)


# --------------------------------------------------------------------------- SASL


async def _create_append_and_read_back(sasl: KafkaSaslEndpoint, prefix: str) -> None:
    """Every kind of client a KafkaLog builds, over ``sasl``'s listener: the admin
    (topics), transactional producers (with a group's offsets), the idempotent
    publisher, the readers and the streaming tail."""
    topic, other = f"{prefix}data", f"{prefix}input"
    async with KafkaLog(sasl.bootstrap, client_id=f"{prefix}log",
                        security=_security(sasl)) as log:
        await log.create_topics([TopicSpec(topic, 2), TopicSpec(other, 1)])
        assert await log.partitions_for(topic) == 2
        # a transaction holding records and a group's offsets
        positions = await log.append(
            [OutRecord(topic, b"one", key=b"k1"), OutRecord(topic, b"two", key=b"k1")],
            commit_group=f"{prefix}group", commit_offsets={(other, 0): 7})
        assert await log.committed(f"{prefix}group", other, 0) == 7
        # a fencing writer of its own, and the idempotent publisher
        async with await log.transactional(f"{prefix}writer") as writer:
            positions += await writer.append([OutRecord(topic, b"three", key=b"k1")])
        positions += await log.publish([OutRecord(topic, b"four", key=b"k1")])
        partition = positions[0].partition
        assert {p.partition for p in positions} == {partition}
        records = await log.read(topic, partition, 0)
        assert [r.value for r in records] == [b"one", b"two", b"three", b"four"]
        # and the streaming reader
        tail = await log.tail(topic, {partition: 0})
        try:
            seen: list[bytes] = []
            async with asyncio.timeout(30):
                while len(seen) < 4:
                    batch = await tail.next(timeout_ms=200, max_records=10)
                    seen += [r.value for r in batch.get(partition, [])]
        finally:
            await tail.close()
        assert seen == [b"one", b"two", b"three", b"four"]


async def test_a_log_over_sasl_creates_topics_appends_transactionally_and_reads_back(
    kafka_sasl: KafkaSaslEndpoint, sasl_prefix: str,
) -> None:
    await _create_append_and_read_back(kafka_sasl, sasl_prefix)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_a_log_authenticates_with_scram(
    kafka_sasl: KafkaSaslEndpoint, sasl_prefix: str, mechanism: str,
) -> None:
    topic = f"{sasl_prefix}scram"
    async with KafkaLog(kafka_sasl.bootstrap, client_id=f"{sasl_prefix}log",
                        security=_security(kafka_sasl, mechanism)) as log:
        await log.create_topics([TopicSpec(topic, 1)])
        [position] = await log.append([OutRecord(topic, mechanism.encode())])
        assert [r.value for r in await log.read(topic, 0, position.offset)] == [
            mechanism.encode()]


@handler("sasl-noop")
async def noop(params: HandlerParams) -> StepResult:
    return Result.success({"step": params.step.id})


FLOW = {
    "id": "sasl-flow", "version": "1", "initialStepId": "a",
    "steps": {
        "a": {"type": "sasl-noop", "outputKey": "a", "transitions": {"onSuccess": "b"}},
        "b": {"type": "sasl-noop", "outputKey": "b", "transitions": {"onSuccess": None}},
    },
}


async def _run_flows(sasl: KafkaSaslEndpoint, prefix: str) -> None:
    """An Engine over ``sasl``'s listener (with the user's last mechanism) runs five
    two-step flows to completion."""
    log = KafkaLog(sasl.bootstrap, topic_prefix=prefix, partitions=2,
                   client_id=f"{prefix}client", security=_security(sasl, sasl.mechanisms[-1]))
    async with Engine(flows=[FLOW], handlers=[noop], log=log,
                      processor_group=f"{prefix}processor") as engine:
        assert engine.group_processors is not None
        assert await engine.group_processors.wait_assigned(30)
        created = await asyncio.gather(*(engine.create("sasl-flow", {"i": i})
                                         for i in range(5)))
        finished = await asyncio.gather(*(engine.wait(c.execution.id, timeout_s=60,
                                                      until=ENDED) for c in created))
    assert {e.status for e in finished} == {ExecutionStatus.COMPLETED}
    assert all(e.context["b"] == {"step": "b"} for e in finished)


async def test_an_engine_runs_flows_end_to_end_over_sasl(
    kafka_sasl: KafkaSaslEndpoint, sasl_prefix: str,
) -> None:
    await _run_flows(kafka_sasl, sasl_prefix)


async def test_a_wrong_password_fails_start_clearly_without_showing_it(
    kafka_sasl: KafkaSaslEndpoint,
) -> None:
    log = KafkaLog(kafka_sasl.bootstrap, client_id="wrong-password",
                   security=_security(kafka_sasl, password=WRONG_PASSWORD))
    async with asyncio.timeout(60):
        with pytest.raises(LogError) as caught:
            await log.start()
    message = str(caught.value)
    assert "refused the credentials" in message
    assert f"as user {kafka_sasl.username!r}" in message
    assert kafka_sasl.bootstrap in message
    assert WRONG_PASSWORD not in message
    assert kafka_sasl.password not in message
    assert WRONG_PASSWORD not in repr(log.security)


# --------------------------------------------------------------------------- SASL_SSL


async def test_a_log_over_sasl_ssl_creates_topics_appends_transactionally_and_reads_back(
    kafka_sasl_ssl: KafkaSaslSslEndpoint, tls_prefix: str,
) -> None:
    await _create_append_and_read_back(kafka_sasl_ssl, tls_prefix)


async def test_an_engine_runs_flows_end_to_end_over_sasl_ssl(
    kafka_sasl_ssl: KafkaSaslSslEndpoint, tls_prefix: str,
) -> None:
    await _run_flows(kafka_sasl_ssl, tls_prefix)


async def test_without_the_ca_file_the_brokers_certificate_is_refused_clearly(
    kafka_sasl_ssl: KafkaSaslSslEndpoint,
) -> None:
    # the system's trusted CAs do not include the test broker's throwaway CA
    log = KafkaLog(kafka_sasl_ssl.bootstrap, client_id="system-trust",
                   security=_security(kafka_sasl_ssl, system_trust=True))
    async with asyncio.timeout(60):
        with pytest.raises(LogError) as caught:
            await log.start()
    assert caught.value.code == "LOG_UNREACHABLE"
    message = str(caught.value)
    assert f"cannot connect to the Kafka cluster at {kafka_sasl_ssl.bootstrap} (SASL_SSL" in message
    # the cause (Python's ssl module) and what to do about it
    assert "certificate verify failed" in message
    assert "The brokers' TLS certificate did not verify: set the CA file" in message
    assert kafka_sasl_ssl.password not in message


# --------------------------------------------------------------------------- the CLI


def _env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    env.update(variables)
    return env


def _sasl_env(sasl: KafkaSaslEndpoint, prefix: str, password: str) -> dict[str, str]:
    """The CLI's settings for ``sasl``'s listener (SASL_SSL: trusting its CA file)."""
    env = _env(FLOWMONKEY_KAFKA_BOOTSTRAP=sasl.bootstrap, FLOWMONKEY_TOPIC_PREFIX=prefix,
               FLOWMONKEY_KAFKA_SECURITY_PROTOCOL=sasl.protocol,
               FLOWMONKEY_KAFKA_SASL_MECHANISM=sasl.mechanisms[0],
               FLOWMONKEY_KAFKA_SASL_USERNAME=sasl.username,
               FLOWMONKEY_KAFKA_SASL_PASSWORD=password)
    if isinstance(sasl, KafkaSaslSslEndpoint):
        env["FLOWMONKEY_KAFKA_SSL_CAFILE"] = sasl.cafile
    return env


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        FLOWMONKEY, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_topics_create_over_sasl_with_the_settings_from_the_environment(
    kafka_sasl: KafkaSaslEndpoint, sasl_prefix: str,
) -> None:
    prefix = sasl_prefix  # the topics are PREFIX.commands …, deleted with the prefix
    env = _sasl_env(kafka_sasl, prefix, kafka_sasl.password)
    code, out, err = await _run("topics", "create", "--partitions", "2", env=env)
    assert code == 0, err
    assert "7 created, 0 found" in out
    assert f"on Kafka at {kafka_sasl.bootstrap} (SASL_PLAINTEXT" in out
    assert kafka_sasl.password not in out + err
    topics = Topics(prefix)
    async with KafkaLog(kafka_sasl.bootstrap, client_id=f"{sasl_prefix}check",
                        security=_security(kafka_sasl)) as log:
        assert await log.partitions_for(topics.commands) == 2
        assert await log.partitions_for(topics.flows) == 1

    wrong = _sasl_env(kafka_sasl, prefix, WRONG_PASSWORD)
    code, out, err = await _run("topics", "create", env=wrong)
    assert code == 1
    assert "refused the credentials" in err
    assert WRONG_PASSWORD not in out + err


async def test_topics_create_over_sasl_ssl_with_the_ca_file_from_the_environment(
    kafka_sasl_ssl: KafkaSaslSslEndpoint, tls_prefix: str,
) -> None:
    tls = kafka_sasl_ssl
    env = _sasl_env(tls, tls_prefix, tls.password)
    assert env["FLOWMONKEY_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["FLOWMONKEY_KAFKA_SSL_CAFILE"] == tls.cafile
    code, out, err = await _run("topics", "create", "--partitions", "2", env=env)
    assert code == 0, err
    assert "7 created, 0 found" in out
    assert f"on Kafka at {tls.bootstrap} (SASL_SSL" in out
    assert tls.password not in out + err
    topics = Topics(tls_prefix)
    async with KafkaLog(tls.bootstrap, client_id=f"{tls_prefix}check",
                        security=_security(tls)) as log:
        assert await log.partitions_for(topics.commands) == 2

    del env["FLOWMONKEY_KAFKA_SSL_CAFILE"]  # the system's trusted CAs only
    code, out, err = await _run("topics", "create", env=env)
    assert code == 1
    assert "certificate verify failed" in err
    assert "The brokers' TLS certificate did not verify" in err


# --------------------------------------------------------------------------- replication


async def _broker_facts(bootstrap: str) -> tuple[int, int]:
    """(number of brokers, their default.replication.factor)."""
    admin = await _admin(bootstrap)
    try:
        cluster = await admin.describe_cluster()
        broker_ids = [b["node_id"] for b in cluster["brokers"]]
        [response] = await admin.describe_configs([ConfigResource(
            ConfigResourceType.BROKER, str(broker_ids[0]), {"default.replication.factor": ""})])
    finally:
        await admin.close()
    [(_, _, _, _, entries)] = response.resources
    configs = {entry[0]: entry[1] for entry in entries}
    return len(broker_ids), int(configs["default.replication.factor"])


async def test_topics_get_the_brokers_default_replication_factor_by_default(
    kafka_bootstrap: str, kafka_prefix: str,
) -> None:
    _, default_factor = await _broker_facts(kafka_bootstrap)
    topic = f"{kafka_prefix}default-rf"
    async with KafkaLog(kafka_bootstrap, client_id=f"{kafka_prefix}log") as log:
        assert log.replication_factor == -1
        await log.create_topics([TopicSpec(topic, 3)])
    admin = await _admin(kafka_bootstrap)
    try:
        [meta] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert meta["error_code"] == 0
    assert sorted(len(p["replicas"]) for p in meta["partitions"]) == [default_factor] * 3


async def test_a_replication_factor_above_the_broker_count_is_refused_naming_the_topic(
    kafka_bootstrap: str, kafka_prefix: str,
) -> None:
    brokers, _ = await _broker_facts(kafka_bootstrap)
    topic = f"{kafka_prefix}too-many-replicas"
    async with KafkaLog(kafka_bootstrap, client_id=f"{kafka_prefix}log",
                        replication_factor=brokers + 1) as log:
        with pytest.raises(LogError) as caught:
            await log.create_topics([TopicSpec(topic, 1)])
    assert caught.value.code == "LOG_REPLICATION_FACTOR"
    message = str(caught.value)
    assert f"could not create topics: {topic}: " in message
    assert f"replication factor {brokers + 1}: use at most the number of brokers" in message


async def test_the_cli_reports_a_replication_factor_the_cluster_cannot_meet(
    kafka_bootstrap: str, kafka_prefix: str,
) -> None:
    brokers, _ = await _broker_facts(kafka_bootstrap)
    env = _env(FLOWMONKEY_KAFKA_BOOTSTRAP=kafka_bootstrap,
               FLOWMONKEY_TOPIC_PREFIX=kafka_prefix,
               FLOWMONKEY_REPLICATION_FACTOR=str(brokers + 1))
    code, _, err = await _run("topics", "create", env=env)
    assert code == 1
    assert Topics(kafka_prefix).commands in err
    assert "FLOWMONKEY_REPLICATION_FACTOR (or --replication-factor)" in err
