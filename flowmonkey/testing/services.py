"""Real PostgreSQL 15 and Apache Kafka 4.x servers for FlowMonkey's integration tests.

Nothing here is faked: :class:`PostgresServer` runs a throwaway cluster made with the
machine's ``initdb``/``pg_ctl``; :class:`KafkaBroker` runs a single-node KRaft broker
from the jars pinned in ``deploy/kafka/pom.xml`` (fetched once by Maven into a cache
folder). Both listen on free ports of 127.0.0.1 only and live in a temp dir that
``stop()`` deletes.

Existing services win: with ``FLOWMONKEY_TEST_POSTGRES_DSN`` and/or
``FLOWMONKEY_TEST_KAFKA_BOOTSTRAP`` set, :class:`TestServices` only checks that they
answer and starts nothing for them.

Command line (run from the repository root)::

    python -m flowmonkey.testing.services fetch-kafka   # pre-fetch the broker jars
    python -m flowmonkey.testing.services up            # start both, print env, wait

Environment knobs:

* ``FLOWMONKEY_CACHE_DIR``: cache root (default ``~/.cache/flowmonkey``); the jars go
  to ``<root>/kafka-<version>/libs``.
* ``FLOWMONKEY_KAFKA_POM``: another pom than ``deploy/kafka/pom.xml``.
* ``FLOWMONKEY_PG_BIN``: folder holding ``initdb``/``pg_ctl`` (default: PostgreSQL 15's
  Debian folder if present, else ``PATH``).
* ``JAVA_HOME``: the JVM to run Kafka with (default ``java`` on ``PATH``).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import fcntl
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "ENV_CACHE_DIR",
    "ENV_KAFKA_BOOTSTRAP",
    "ENV_POSTGRES_DSN",
    "KAFKA_VERSION",
    "KafkaBroker",
    "PostgresServer",
    "ServiceError",
    "TestServices",
    "ensure_kafka_libs",
    "kafka_cache_dir",
    "run_async",
    "services_from_env",
]

ENV_KAFKA_BOOTSTRAP = "FLOWMONKEY_TEST_KAFKA_BOOTSTRAP"
ENV_POSTGRES_DSN = "FLOWMONKEY_TEST_POSTGRES_DSN"
ENV_CACHE_DIR = "FLOWMONKEY_CACHE_DIR"
ENV_KAFKA_POM = "FLOWMONKEY_KAFKA_POM"
ENV_PG_BIN = "FLOWMONKEY_PG_BIN"

#: Fallback only: the version actually fetched is ``<kafka.version>`` of the pom.
KAFKA_VERSION = "4.1.2"
POSTGRES_MAJOR = 15

_HOST = "127.0.0.1"
_MARKER = ".flowmonkey-complete"
_T = TypeVar("_T")


class ServiceError(RuntimeError):
    """A test service could not be fetched, started or reached."""


# --------------------------------------------------------------------------- helpers


def run_async(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``factory()`` to completion on a private event loop in a helper thread.

    Safe to call from sync code whether or not an event loop is running in the
    calling thread (e.g. from a sync pytest fixture used by an async test).
    """
    result: list[_T] = []
    error: list[BaseException] = []

    async def main() -> None:
        result.append(await factory())

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="flowmonkey-services", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _free_ports(count: int) -> list[int]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((_HOST, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _is_root() -> bool:
    return os.geteuid() == 0


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _log(msg: str) -> None:
    print(f"[flowmonkey.services] {msg}", file=sys.stderr, flush=True)


# -------------------------------------------------------------------------- postgres


def _pg_bin_dir() -> Path:
    configured = os.environ.get(ENV_PG_BIN)
    if configured:
        return Path(configured)
    debian = Path(f"/usr/lib/postgresql/{POSTGRES_MAJOR}/bin")
    if (debian / "pg_ctl").exists():
        return debian
    found = shutil.which("pg_ctl")
    if found is None:
        raise ServiceError(
            f"PostgreSQL {POSTGRES_MAJOR} server binaries not found: no pg_ctl on PATH, "
            f"no {debian}; install postgresql-{POSTGRES_MAJOR} or set {ENV_PG_BIN}, "
            f"or point {ENV_POSTGRES_DSN} at a running server"
        )
    return Path(found).resolve().parent


def _pg_temp_root() -> str | None:
    """As root, a temp root that the ``postgres`` user can reach (``$TMPDIR`` may not be)."""
    if not _is_root():
        return None
    root = Path(tempfile.gettempdir()).resolve()
    if all(p.stat().st_mode & 0o001 for p in [root, *root.parents]):
        return None
    return "/tmp"  # noqa: S108 - world-traversable by definition; mkdtemp makes it private


class PostgresServer:
    """A throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``) on 127.0.0.1.

    Trust authentication, superuser ``postgres``, fsync off. As root the server
    runs as the ``postgres`` OS user (PostgreSQL refuses to run as root).
    """

    def __init__(self, *, start_timeout: float = 60.0, os_user: str = "postgres") -> None:
        self.start_timeout = start_timeout
        self.os_user = os_user
        self.port = 0
        self.base_dir: Path | None = None
        self.started_in: float | None = None
        self._running = False

    # ------------------------------------------------------------------ properties
    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def log_path(self) -> Path:
        return self._base() / "postgres.log"

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        if not self._running:
            raise ServiceError("PostgresServer is not running")
        return f"postgresql://postgres@{_HOST}:{self.port}/{database}"

    def _base(self) -> Path:
        if self.base_dir is None:
            raise ServiceError("PostgresServer was not started")
        return self.base_dir

    # ------------------------------------------------------------------- lifecycle
    def _cmd(self, *argv: str) -> list[str]:
        if _is_root():
            return ["runuser", "-u", self.os_user, "--", *argv]
        return list(argv)

    def _run(self, *argv: str, timeout: float) -> None:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            self._cmd(*argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self._base(),
        )
        if proc.returncode != 0:
            raise ServiceError(
                f"{Path(argv[0]).name} failed (exit {proc.returncode}):\n{proc.stdout}"
            )

    def start(self) -> PostgresServer:
        if self._running:
            return self
        began = time.monotonic()
        bindir = _pg_bin_dir()
        self.base_dir = Path(tempfile.mkdtemp(prefix="flowmonkey-pg-", dir=_pg_temp_root()))
        atexit.register(self.stop)
        try:
            if _is_root():
                try:
                    entry = pwd.getpwnam(self.os_user)
                except KeyError:
                    raise ServiceError(
                        f"running as root but there is no '{self.os_user}' OS user to run "
                        "PostgreSQL as (create it, e.g. apt-get install postgresql-common)"
                    ) from None
                os.chown(self.base_dir, entry.pw_uid, entry.pw_gid)
            initdb_flags = [
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
            self._run(str(bindir / "initdb"), "-D", str(self.data_dir), *initdb_flags, timeout=120)
            with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write(
                    "\n# flowmonkey test server\n"
                    f"listen_addresses = '{_HOST}'\n"
                    f"unix_socket_directories = '{self._base()}'\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "max_connections = 200\n"
                    "max_prepared_transactions = 20\n"
                )
            for attempt in range(3):
                self.port = free_port()
                with (self.data_dir / "postgresql.auto.conf").open("w", encoding="utf-8") as f:
                    f.write(f"port = {self.port}\n")
                try:
                    self._run(
                        *[str(bindir / "pg_ctl"), "start", "-D", str(self.data_dir)],
                        *["-l", str(self.log_path), "-w", "-t", str(int(self.start_timeout))],
                        timeout=self.start_timeout + 30,
                    )
                    break
                except ServiceError:
                    if attempt == 2 or "already in use" not in _tail(self.log_path, 20):
                        raise
            self._running = True
            self._wait_ready(began + self.start_timeout)
        except BaseException as exc:
            has_log = self.base_dir is not None and self.log_path.exists()
            log = _tail(self.log_path) if has_log else ""
            self.stop()
            if isinstance(exc, ServiceError) and log:
                raise ServiceError(f"{exc}\n--- postgres log tail ---\n{log}") from None
            raise
        self.started_in = time.monotonic() - began
        return self

    def _wait_ready(self, deadline: float) -> None:
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                version = run_async(lambda: _pg_server_version(self.dsn))
            except Exception as exc:  # refused / "starting up": retry until the deadline
                last = exc
            else:
                if not version.startswith(f"PostgreSQL {POSTGRES_MAJOR}"):
                    raise ServiceError(f"expected PostgreSQL {POSTGRES_MAJOR}, got {version}")
                return
            time.sleep(0.2)
        raise ServiceError(f"PostgreSQL on port {self.port} not ready in time: {last!r}")

    def create_database(self, name: str) -> str:
        """Create database ``name`` (if missing) and return its DSN."""
        run_async(lambda: _pg_create_database(self.dsn, name))
        return self.dsn_for(name)

    def stop(self) -> None:
        base, self.base_dir = self.base_dir, None
        if base is None:
            return
        if (base / "data" / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                subprocess.run(  # noqa: S603 - fixed argv, no shell
                    self._cmd(
                        *[str(_pg_bin_dir() / "pg_ctl"), "stop", "-D", str(base / "data")],
                        *["-m", "immediate", "-w"],
                    ),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=60,
                    check=False,
                    cwd=base,
                )
            _kill_postmaster(base / "data" / "postmaster.pid")
        self._running = False
        shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_postmaster(pid_file: Path) -> None:
    """Last resort if ``pg_ctl stop`` did not get rid of the postmaster."""
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


async def _pg_server_version(dsn: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        version: str = await conn.fetchval("select version()")
        return version
    finally:
        await conn.close()


async def _pg_create_database(dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        exists = await conn.fetchval("select 1 from pg_database where datname = $1", name)
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            await conn.execute(f"create database {quoted}")
    finally:
        await conn.close()


# ----------------------------------------------------------------------------- kafka


def kafka_pom() -> Path:
    configured = os.environ.get(ENV_KAFKA_POM)
    candidates = [Path(configured)] if configured else []
    candidates += [_repo_root() / "deploy/kafka/pom.xml", Path.cwd() / "deploy/kafka/pom.xml"]
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
            _log(f"fetching Kafka jars: {' '.join(argv)}")
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
            _log(f"{len(jars)} jars in {libs} ({time.monotonic() - began:.1f}s)")
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
        self.controller_port = 0
        self.base_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.fetched_in: float | None = None
        self.started_in: float | None = None

    @property
    def bootstrap(self) -> str:
        if self.process is None:
            raise ServiceError("KafkaBroker is not running")
        return f"{_HOST}:{self.port}"

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
            "controller.quorum.voters": f"1@{_HOST}:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://{_HOST}:{self.port},CONTROLLER://{_HOST}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{_HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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
                self.port, self.controller_port = _free_ports(2)
                config = self.base_dir / "server.properties"
                shutil.rmtree(self.base_dir / "data", ignore_errors=True)
                config.write_text(
                    "".join(f"{k}={v}\n" for k, v in self.properties().items()),
                    encoding="utf-8",
                )
                fmt = subprocess.run(  # noqa: S603 - fixed argv, no shell
                    [*tool, "format", "-t", _cluster_id(), "-c", str(config)],
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
                    tail = _tail(self.log_path, 200)
                    self._kill()
                    if attempt == 2 or "Address already in use" not in tail:
                        raise
        except BaseException as exc:
            has_log = self.base_dir is not None and self.log_path.exists()
            log_tail = _tail(self.log_path) if has_log else ""
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
            if _tcp_open(_HOST, self.port):
                try:
                    run_async(lambda: _kafka_probe(f"{_HOST}:{self.port}", create_topic=True))
                except Exception as exc:  # not ready yet: retry until the deadline
                    last = exc
                else:
                    return
            time.sleep(0.25)
        raise ServiceError(
            f"Kafka broker on {_HOST}:{self.port} not ready in {self.start_timeout:.0f}s: {last!r}"
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


async def _kafka_probe(bootstrap: str, *, create_topic: bool) -> None:
    """Raise unless the broker answers metadata (and, optionally, creates a topic)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
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


# ------------------------------------------------------------------- env / fixtures


class TestServices:
    """The services of one test session: from the environment, else started lazily.

    ``postgres_dsn()`` / ``kafka_bootstrap()`` start (or check) a service on first
    use only; ``close()`` stops what was started here.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.external_postgres_dsn = env.get(ENV_POSTGRES_DSN) or None
        self.external_kafka_bootstrap = env.get(ENV_KAFKA_BOOTSTRAP) or None
        self.postgres: PostgresServer | None = None
        self.kafka: KafkaBroker | None = None
        self._dsn: str | None = None
        self._bootstrap: str | None = None
        self._lock = threading.Lock()
        self.timings: dict[str, float] = {}

    def postgres_dsn(self) -> str:
        with self._lock:
            if self._dsn is None:
                began = time.monotonic()
                if self.external_postgres_dsn:
                    dsn = self.external_postgres_dsn
                    try:
                        run_async(lambda: _pg_server_version(dsn))
                    except Exception as exc:
                        raise ServiceError(
                            f"{ENV_POSTGRES_DSN}={dsn!r} is not reachable: {exc!r}"
                        ) from exc
                    self._dsn = dsn
                    self.timings["postgres check"] = time.monotonic() - began
                else:
                    self.postgres = PostgresServer().start()
                    self._dsn = self.postgres.dsn
                    self.timings["postgres start"] = time.monotonic() - began
            return self._dsn

    def kafka_bootstrap(self) -> str:
        with self._lock:
            if self._bootstrap is None:
                began = time.monotonic()
                if self.external_kafka_bootstrap:
                    bootstrap = self.external_kafka_bootstrap
                    try:
                        run_async(lambda: _kafka_probe(bootstrap, create_topic=False))
                    except Exception as exc:
                        raise ServiceError(
                            f"{ENV_KAFKA_BOOTSTRAP}={bootstrap!r} is not reachable: {exc!r}"
                        ) from exc
                    self._bootstrap = bootstrap
                    self.timings["kafka check"] = time.monotonic() - began
                else:
                    self.kafka = KafkaBroker().start()
                    self._bootstrap = self.kafka.bootstrap
                    self.timings["kafka jars"] = self.kafka.fetched_in or 0.0
                    self.timings["kafka start"] = self.kafka.started_in or 0.0
            return self._bootstrap

    def close(self) -> None:
        with self._lock:
            if self.kafka is not None:
                self.kafka.stop()
            if self.postgres is not None:
                self.postgres.stop()
            self.kafka = self.postgres = None
            self._dsn = self._bootstrap = None

    def summary(self) -> str:
        return ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())


def services_from_env(environ: dict[str, str] | None = None) -> TestServices:
    """Services from ``FLOWMONKEY_TEST_*`` env vars, else started on first use."""
    return TestServices(environ)


# ------------------------------------------------------------------------------ CLI


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flowmonkey.testing.services",
        description="Real PostgreSQL / Kafka servers for FlowMonkey's integration tests.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch-kafka", help="only download the pinned Kafka jars into the cache")
    up = sub.add_parser("up", help="start the services, print their env vars, wait for Ctrl-C")
    up.add_argument("--no-kafka", action="store_true", help="do not start Kafka")
    up.add_argument("--no-postgres", action="store_true", help="do not start PostgreSQL")
    args = parser.parse_args(argv)

    try:
        if args.command == "fetch-kafka":
            began = time.monotonic()
            libs = ensure_kafka_libs(verbose=True)
            print(f"kafka {kafka_version()} jars: {libs} ({time.monotonic() - began:.1f}s)")
            return 0
        services = TestServices(environ={})
        with _sigterm_as_interrupt():
            try:
                if not args.no_postgres:
                    print(f"export {ENV_POSTGRES_DSN}={services.postgres_dsn()}", flush=True)
                if not args.no_kafka:
                    print(f"export {ENV_KAFKA_BOOTSTRAP}={services.kafka_bootstrap()}", flush=True)
                _log(f"up ({services.summary()}); Ctrl-C to stop")
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                _log("stopping")
            finally:
                services.close()
        return 0
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
