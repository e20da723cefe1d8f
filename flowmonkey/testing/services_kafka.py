"""A single-node Apache Kafka 4.x broker (KRaft) for FlowMonkey's integration tests.

:func:`ensure_kafka_libs` fetches the jars pinned in ``deploy/kafka/pom.xml`` once with
Maven into a cache folder (``FLOWMONKEY_CACHE_DIR``, default ``~/.cache/flowmonkey``;
``FLOWMONKEY_KAFKA_POM`` for another pom); :class:`KafkaBroker` runs them with
``JAVA_HOME``'s JVM (default ``java`` on ``PATH``) on free ports of 127.0.0.1, in a temp
dir that ``stop()`` deletes. Admin helpers: :func:`kafka_probe` and
:func:`delete_topics_with_prefix`.

The broker has three client listeners: PLAINTEXT (:attr:`KafkaBroker.bootstrap`),
SASL_PLAINTEXT (:attr:`KafkaBroker.sasl`) and SASL_SSL (:attr:`KafkaBroker.sasl_ssl`).
On both SASL listeners one user (``flowmonkey``, a random password per broker)
authenticates with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. No authorizer is configured,
so that user may do everything. The SASL_SSL listener's certificate (for 127.0.0.1 and
localhost) is signed by a throwaway CA that :func:`make_test_tls` creates with the
``openssl`` command at broker start; clients trust it through
:attr:`KafkaSaslSslEndpoint.cafile`.
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
    "KafkaSaslSslEndpoint",
    "TestTls",
    "delete_topics_with_prefix",
    "ensure_kafka_libs",
    "kafka_cache_dir",
    "kafka_pom",
    "kafka_probe",
    "kafka_version",
    "make_test_tls",
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

    @property
    def protocol(self) -> str:
        return "SASL_PLAINTEXT"


@dataclass(frozen=True, slots=True)
class KafkaSaslSslEndpoint(KafkaSaslEndpoint):
    """A SASL_SSL listener and a user it accepts; ``cafile`` is the CA (PEM) that signed
    the listener's certificate, which clients must trust."""

    cafile: str = field(kw_only=True)

    @property
    def protocol(self) -> str:
        return "SASL_SSL"


@dataclass(frozen=True, slots=True)
class TestTls:
    """The TLS files of a test broker: the CA clients trust, and the broker's PEM
    keystore (its unencrypted PKCS#8 key, then its certificate and the CA's)."""

    __test__ = False  # not a pytest test class

    cafile: Path
    keystore: Path


# the server certificate's extensions; a strict verifier (Python 3.13's default
# context) also wants the key identifiers and key usages
_SERVER_EXTENSIONS = f"""\
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:{HOST},DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def make_test_tls(folder: Path) -> TestTls:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost signed by
    it, made with the ``openssl`` command in ``folder``; made once (kept there).

    EC keys (prime256v1) keep this to a few tens of milliseconds. Kafka reads the PEM
    keystore itself (``ssl.keystore.type=PEM``): an unencrypted key must be PKCS#8
    (``BEGIN PRIVATE KEY``), which is what ``openssl req -nodes`` writes.
    """
    tls = TestTls(folder / "ca.pem", folder / "broker-keystore.pem")
    if tls.cafile.is_file() and tls.keystore.is_file():
        return tls
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ServiceError(
            "the openssl command is needed to make the test broker's TLS certificates "
            "(its SASL_SSL listener): install it (Debian: apt-get install openssl), or "
            f"point {ENV_KAFKA_BOOTSTRAP} at a running broker")
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_key, key, csr = folder / "ca.key", folder / "broker.key", folder / "broker.csr"
    server_cert, extensions = folder / "broker.pem", folder / "extensions.cnf"
    extensions.write_text(_SERVER_EXTENSIONS, encoding="utf-8")
    steps = [
        [openssl, "req", "-x509", *ec, "-days", "30", "-subj", "/CN=FlowMonkey test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-keyout", str(ca_key), "-out", str(tls.cafile)],
        [openssl, "req", "-new", *ec, "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(csr)],
        # an explicit random serial: openssl 1.1 would otherwise want a serial file
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(tls.cafile),
         "-CAkey", str(ca_key), "-set_serial", f"0x{secrets.token_hex(16)}", "-days", "30",
         "-extfile", str(extensions), "-extensions", "server", "-out", str(server_cert)],
    ]
    for argv in steps:
        made = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=60, check=False)
        if made.returncode != 0:
            raise ServiceError(f"making the test broker's TLS certificates failed: "
                               f"{' '.join(argv)}:\n{made.stdout}")
    # written last, whole: its presence means the set is complete
    partial = folder / "broker-keystore.pem.partial"
    partial.write_text(key.read_text() + server_cert.read_text() + tls.cafile.read_text(),
                       encoding="utf-8")
    partial.chmod(0o600)
    partial.rename(tls.keystore)
    return tls


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


#: Settings of the hardened test broker that differ from Apache Kafka's defaults in
#: ways a FlowMonkey user's cluster may not: a broker made with ``kafka_defaults=True``
#: leaves them out, so it auto-creates topics on a metadata request for a missing one
#: (``auto.create.topics.enable=true``) and keeps records 7 days (``log.retention.hours``)
_HARDENING = frozenset({
    "auto.create.topics.enable", "num.partitions", "default.replication.factor",
    "min.insync.replicas", "delete.topic.enable", "log.segment.bytes",
    "log.index.size.max.bytes", "log.retention.check.interval.ms",
})


class KafkaBroker:
    """A single-node Apache Kafka 4.x broker + controller (KRaft) on 127.0.0.1.

    ``kafka_defaults=True``: Kafka's default topic settings (auto-creation on, 7-day
    retention, no compaction), as a cluster someone else set up may have; only what
    one node needs to run at all stays (replication factor 1 for the internal topics).
    """

    def __init__(
        self,
        *,
        start_timeout: float = 120.0,
        heap: str = "512m",
        extra_properties: dict[str, str] | None = None,
        kafka_defaults: bool = False,
    ) -> None:
        self.start_timeout = start_timeout
        self.heap = heap
        self.extra_properties = dict(extra_properties or {})
        self.kafka_defaults = kafka_defaults
        self.port = 0
        self.sasl_port = 0
        self.sasl_ssl_port = 0
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
    def sasl_ssl(self) -> KafkaSaslSslEndpoint:
        """The SASL_SSL listener, its user (the SASL_PLAINTEXT one's) and its CA file."""
        if self.process is None or self.base_dir is None:
            raise ServiceError("KafkaBroker is not running")
        return KafkaSaslSslEndpoint(
            f"{HOST}:{self.sasl_ssl_port}", SASL_USER, self.sasl_password,
            ("PLAIN", *SCRAM_MECHANISMS), cafile=str(self.tls.cafile))

    @property
    def tls(self) -> TestTls:
        if self.base_dir is None:
            raise ServiceError("KafkaBroker was not started")
        return make_test_tls(self.base_dir / "tls")

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
                f"SASL_SSL://{HOST}:{self.sasl_ssl_port},"
                f"CONTROLLER://{HOST}:{self.controller_port}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://{HOST}:{self.port},SASL_PLAINTEXT://{HOST}:{self.sasl_port},"
                f"SASL_SSL://{HOST}:{self.sasl_ssl_port}"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,"
                "CONTROLLER:PLAINTEXT"
            ),
            # the SASL listeners (clients only): PLAIN users live in the JAAS config,
            # SCRAM users in the cluster metadata (added by `format --add-scram`)
            "sasl.enabled.mechanisms": ",".join(("PLAIN", *SCRAM_MECHANISMS)),
            **{
                f"listener.name.{listener}.plain.sasl.jaas.config": (
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f'user_{SASL_USER}="{self.sasl_password}";'
                )
                for listener in ("sasl_plaintext", "sasl_ssl")
            },
            **{
                f"listener.name.{listener}.{m.lower()}.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
                for listener in ("sasl_plaintext", "sasl_ssl")
                for m in SCRAM_MECHANISMS
            },
            # the SASL_SSL listener's key and certificate chain, read as PEM by Kafka
            # itself (no keystore password: PEM allows none, and the key is not
            # encrypted); no client certificates are asked for
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(self.tls.keystore),
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
        if self.kafka_defaults:
            props = {k: v for k, v in props.items() if k not in _HARDENING}
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
                self.port, self.sasl_port, self.sasl_ssl_port, self.controller_port = (
                    free_ports(4))
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
    with ``sasl``, as its user over its protocol (its first mechanism; for SASL_SSL,
    trusting its CA file)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.helpers import create_ssl_context

    security: dict[str, Any] = {} if sasl is None else {
        "security_protocol": sasl.protocol, "sasl_mechanism": sasl.mechanisms[0],
        "sasl_plain_username": sasl.username, "sasl_plain_password": sasl.password}
    if isinstance(sasl, KafkaSaslSslEndpoint):
        security["ssl_context"] = create_ssl_context(cafile=sasl.cafile)
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
