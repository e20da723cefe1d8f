"""A single-node Apache Kafka 4.x broker (KRaft) for FlowMonkey's integration tests.

:func:`ensure_kafka_libs` fetches the jars pinned in ``deploy/kafka/pom.xml`` once with
Maven into a cache folder (``FLOWMONKEY_CACHE_DIR``, default ``~/.cache/flowmonkey``;
``FLOWMONKEY_KAFKA_POM`` for another pom); :class:`KafkaBroker` runs them with
``JAVA_HOME``'s JVM (default ``java`` on ``PATH``) on free ports of 127.0.0.1, in a temp
dir that ``stop()`` deletes. Admin helpers: :func:`kafka_probe` and
:func:`delete_topics_with_prefix`.

The broker has two client listeners: PLAINTEXT (:attr:`KafkaBroker.bootstrap`) and
SASL_PLAINTEXT (:attr:`KafkaBroker.sasl`), where one user (``flowmonkey``, a random
password per broker) authenticates with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. No
authorizer is configured, so that user may do everything.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowmonkey.testing.services_common import (
    ENV_KAFKA_BOOTSTRAP,
    HOST,
    ServiceError,
    free_ports,
    log_status,
    repo_root,
    run_async,
    tail_of,
    tcp_open,
)

__all__ = [
    "ENV_CACHE_DIR",
    "ENV_KAFKA_POM",
    "KAFKA_VERSION",
    "KafkaBroker",
    "KafkaSaslEndpoint",
    "delete_topics_with_prefix",
    "ensure_kafka_libs",
    "kafka_cache_dir",
    "kafka_pom",
    "kafka_probe",
    "kafka_version",
]

ENV_CACHE_DIR = "FLOWMONKEY_CACHE_DIR"
ENV_KAFKA_POM = "FLOWMONKEY_KAFKA_POM"

#: Fallback only: the version actually fetched is ``<kafka.version>`` of the pom.
KAFKA_VERSION = "4.1.2"

_MARKER = ".flowmonkey-complete"

SASL_USER = "flowmonkey"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True, slots=True)
class KafkaSaslEndpoint:
    """A SASL_PLAINTEXT listener and a user it accepts, with each mechanism in
    ``mechanisms`` (the test broker: PLAIN and both SCRAMs)."""

    bootstrap: str
    username: str
    password: str = field(repr=False)
    mechanisms: tuple[str, ...] = ("PLAIN",)


def kafka_pom() -> Path:
    configured = os.environ.get(ENV_KAFKA_POM)
    candidates = [Path(configured)] if configured else []
    candidates += [repo_root() / "deploy/kafka/pom.xml", Path.cwd() / "deploy/kafka/pom.xml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ServiceError(
        "deploy/kafka/pom.xml not found (run from the repository root or set "
        f"{ENV_KAFKA_POM}); or point {ENV_KAFKA_BOOTSTRAP} at a running broker"
    )


def kafka_version(pom: Path | None = None) -> str:
    """The ``<kafka.version>`` pinned in the pom."""
    text = (pom or kafka_pom()).read_text(encoding="utf-8")
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", text)
    return match.group(1) if match else KAFKA_VERSION


def kafka_cache_dir(version: str | None = None) -> Path:
    """``$FLOWMONKEY_CACHE_DIR/kafka-<version>`` (default root ``~/.cache/flowmonkey``)."""
    root = os.environ.get(ENV_CACHE_DIR) or str(Path.home() / ".cache" / "flowmonkey")
    return Path(root) / f"kafka-{version or kafka_version()}"


def ensure_kafka_libs(*, verbose: bool = False) -> Path:
    """Return the folder of the Kafka broker's jars, fetching them with Maven once.

    The folder counts as complete only with a marker holding the pom's hash, so an
    interrupted fetch or an edited pom triggers a new fetch. Concurrent callers
    (e.g. pytest-xdist workers) serialise on a lock file.
    """
    pom = kafka_pom()
    pom_hash = hashlib.sha256(pom.read_bytes()).hexdigest()
    cache = kafka_cache_dir(kafka_version(pom))
    libs = cache / "libs"
    marker = libs / _MARKER
    if _marker_ok(marker, pom_hash):
        return libs
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _marker_ok(marker, pom_hash):
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ServiceError(
                "Maven (mvn) not on PATH: needed once to fetch the Kafka broker jars "
                f"into {libs}; or point {ENV_KAFKA_BOOTSTRAP} at a running broker"
            )
        for leftover in cache.glob("libs-*"):  # from an interrupted fetch
            shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=cache))
        argv = [mvn, "-B", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies"]
        argv.append(f"-DoutputDirectory={staging}")
        if not verbose:
            argv.insert(2, "-q")
        began = time.monotonic()
        if verbose:
            log_status(f"fetching Kafka jars: {' '.join(argv)}")
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv,
            stdout=None if verbose else subprocess.PIPE,
            stderr=None if verbose else subprocess.STDOUT,
            text=True,
            check=False,
            timeout=1800,
        )
        jars = list(staging.glob("*.jar"))
        if proc.returncode != 0 or not any(j.name.startswith("kafka_2.13-") for j in jars):
            shutil.rmtree(staging, ignore_errors=True)
            raise ServiceError(
                f"fetching the Kafka jars failed (mvn exit {proc.returncode}):\n{proc.stdout or ''}"
            )
        (staging / _MARKER).write_text(pom_hash + "\n")
        staging.chmod(0o755)
        if libs.exists():
            shutil.rmtree(libs)
        staging.rename(libs)
        if verbose:
            log_status(f"{len(jars)} jars in {libs} ({time.monotonic() - began:.1f}s)")
        return libs


def _marker_ok(marker: Path, pom_hash: str) -> bool:
    try:
        return marker.read_text().strip() == pom_hash
    except OSError:
        return False


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise ServiceError(
            "java not found (need Java 17+ for Kafka 4.x); install a JRE or set JAVA_HOME, "
            f"or point {ENV_KAFKA_BOOTSTRAP} at a running broker"
        )
    return found


_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
"""


class KafkaBroker:
    """A single-node Apache Kafka 4.x broker + controller (KRaft) on 127.0.0.1."""

    def __init__(
        self,
        *,
        start_timeout: float = 120.0,
        heap: str = "512m",
        extra_properties: dict[str, str] | None = None,
    ) -> None:
        self.start_timeout = start_timeout
        self.heap = heap
        self.extra_properties = dict(extra_properties or {})
        self.port = 0
        self.sasl_port = 0
        self.controller_port = 0
        # per broker: a test must not work by knowing a fixed password
        self.sasl_password = secrets.token_urlsafe(18)
        self.base_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.fetched_in: float | None = None
        self.started_in: float | None = None

    @property
    def bootstrap(self) -> str:
        if self.process is None:
            raise ServiceError("KafkaBroker is not running")
        return f"{HOST}:{self.port}"

    @property
    def sasl(self) -> KafkaSaslEndpoint:
        """The SASL_PLAINTEXT listener and its user."""
        if self.process is None:
            raise ServiceError("KafkaBroker is not running")
        return KafkaSaslEndpoint(f"{HOST}:{self.sasl_port}", SASL_USER, self.sasl_password,
                                 ("PLAIN", *SCRAM_MECHANISMS))

    @property
    def log_path(self) -> Path:
        if self.base_dir is None:
            raise ServiceError("KafkaBroker was not started")
        return self.base_dir / "broker.log"

    def properties(self) -> dict[str, str]:
        if self.base_dir is None:
            raise ServiceError("KafkaBroker was not started")
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://{HOST}:{self.port},SASL_PLAINTEXT://{HOST}:{self.sasl_port},"
                f"CONTROLLER://{HOST}:{self.controller_port}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://{HOST}:{self.port},SASL_PLAINTEXT://{HOST}:{self.sasl_port}"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            # the SASL listener (clients only): PLAIN users live in the JAAS config,
            # SCRAM users in the cluster metadata (added by `format --add-scram`)
            "sasl.enabled.mechanisms": ",".join(("PLAIN", *SCRAM_MECHANISMS)),
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'user_{SASL_USER}="{self.sasl_password}";'
            ),
            **{
                f"listener.name.sasl_plaintext.{m.lower()}.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
                for m in SCRAM_MECHANISMS
            },
            "log.dirs": str(self.base_dir / "data"),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "delete.topic.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # the group coordinator batches its log appends for up to 10 ms by default;
            # every transaction's offset commit waits for that linger
            "group.coordinator.append.linger.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.segment.bytes": str(16 * 1024 * 1024),
            "log.index.size.max.bytes": str(1024 * 1024),
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "log.retention.check.interval.ms": "60000",
        }
        props.update(self.extra_properties)
        return props

    def start(self) -> KafkaBroker:
        if self.process is not None:
            return self
        began = time.monotonic()
        libs = ensure_kafka_libs()
        self.fetched_in = time.monotonic() - began
        began = time.monotonic()
        java = _java()
        classpath = f"{libs}/*"
        self.base_dir = Path(tempfile.mkdtemp(prefix="flowmonkey-kafka-"))
        atexit.register(self.stop)
        log4j = self.base_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2, encoding="utf-8")
        jvm = [java, f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true"]
        tool = [*jvm, "-Xmx256m", "-cp", classpath, "kafka.tools.StorageTool"]
        broker = [*jvm, f"-Xmx{self.heap}", "-Xms128m", "-XX:+ExitOnOutOfMemoryError"]
        broker += ["-cp", classpath]
        try:
            for attempt in range(3):
                self.port, self.sasl_port, self.controller_port = free_ports(3)
                config = self.base_dir / "server.properties"
                shutil.rmtree(self.base_dir / "data", ignore_errors=True)
                config.write_text(
                    "".join(f"{k}={v}\n" for k, v in self.properties().items()),
                    encoding="utf-8",
                )
                scram = [f"--add-scram={m}=[name={SASL_USER},password={self.sasl_password}]"
                         for m in SCRAM_MECHANISMS]
                fmt = subprocess.run(  # noqa: S603 - fixed argv, no shell
                    [*tool, "format", "-t", _cluster_id(), "-c", str(config), *scram],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=120,
                    check=False,
                    cwd=self.base_dir,
                )
                if fmt.returncode != 0:
                    raise ServiceError(f"kafka StorageTool format failed:\n{fmt.stdout}")
                with self.log_path.open("ab") as log:
                    self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                        [*broker, "kafka.Kafka", str(config)],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=self.base_dir,
                    )
                try:
                    self._wait_ready(time.monotonic() + self.start_timeout)
                    break
                except ServiceError:
                    tail = tail_of(self.log_path, 200)
                    self._kill()
                    if attempt == 2 or "Address already in use" not in tail:
                        raise
        except BaseException as exc:
            has_log = self.base_dir is not None and self.log_path.exists()
            log_tail = tail_of(self.log_path) if has_log else ""
            self.stop()
            if isinstance(exc, ServiceError) and log_tail:
                raise ServiceError(f"{exc}\n--- kafka broker log tail ---\n{log_tail}") from None
            raise
        self.started_in = time.monotonic() - began
        return self

    def _wait_ready(self, deadline: float) -> None:
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServiceError(f"Kafka broker exited during startup (exit {code})")
            if tcp_open(HOST, self.port):
                try:
                    run_async(lambda: kafka_probe(f"{HOST}:{self.port}", create_topic=True))
                except Exception as exc:  # not ready yet: retry until the deadline
                    last = exc
                else:
                    return
            time.sleep(0.25)
        raise ServiceError(
            f"Kafka broker on {HOST}:{self.port} not ready in {self.start_timeout:.0f}s: {last!r}"
        )

    def _kill(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)

    def stop(self) -> None:
        self._kill()
        base, self.base_dir = self.base_dir, None
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _response_errors(response: Any) -> list[str]:
    """Non-zero ``error_code`` entries of an aiokafka admin response."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            code = node.get("error_code")
            if isinstance(code, int) and code != 0:
                name = node.get("topic") or node.get("name") or ""
                found.append(f"{name}: error {code} {node.get('error_message') or ''}".strip())
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item)

    walk(response.to_object())
    return found


async def kafka_probe(bootstrap: str, *, create_topic: bool,
                      sasl: KafkaSaslEndpoint | None = None) -> None:
    """Raise unless the broker answers metadata (and, optionally, creates a topic);
    with ``sasl``, as its user over SASL_PLAINTEXT (its first mechanism)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    security: dict[str, Any] = {} if sasl is None else {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": sasl.mechanisms[0],
        "sasl_plain_username": sasl.username, "sasl_plain_password": sasl.password}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                                **security)
    try:
        await admin.start()
        await admin.list_topics()
        if create_topic:
            name = f"__flowmonkey_probe_{uuid.uuid4().hex[:12]}"
            errors = _response_errors(
                await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
            )
            if errors:
                raise ServiceError(f"probe topic not created: {errors}")
            errors = _response_errors(await admin.delete_topics([name]))
            if errors:
                raise ServiceError(f"probe topic not deleted: {errors}")
    finally:
        await admin.close()


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix``; returns their names."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        await admin.start()
        names = [t for t in await admin.list_topics() if str(t).startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return [str(n) for n in names]
    finally:
        await admin.close()
