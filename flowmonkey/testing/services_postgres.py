"""A throwaway PostgreSQL 15 cluster for FlowMonkey's integration tests.

:class:`PostgresServer` runs a cluster made with the machine's ``initdb``/``pg_ctl``
on a free port of 127.0.0.1, in a temp dir that ``stop()`` deletes. ``FLOWMONKEY_PG_BIN``
names the folder holding ``initdb``/``pg_ctl`` (default: PostgreSQL 15's Debian folder
if present, else ``PATH``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from flowmonkey.testing.services_common import (
    ENV_POSTGRES_DSN,
    HOST,
    ServiceError,
    free_port,
    is_root,
    run_async,
    tail_of,
)

__all__ = ["ENV_PG_BIN", "POSTGRES_MAJOR", "PostgresServer", "pg_server_version"]

ENV_PG_BIN = "FLOWMONKEY_PG_BIN"
POSTGRES_MAJOR = 15


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
    if not is_root():
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

    def __init__(self, *, start_timeout: float = 60.0, os_user: str = "postgres",
                 settings: Mapping[str, str] | None = None) -> None:
        self.start_timeout = start_timeout
        self.os_user = os_user
        self.settings = dict(settings or {})
        """More ``postgresql.conf`` lines (name -> value as written there), after and
        over the defaults."""
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
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def _base(self) -> Path:
        if self.base_dir is None:
            raise ServiceError("PostgresServer was not started")
        return self.base_dir

    # ------------------------------------------------------------------- lifecycle
    def _cmd(self, *argv: str) -> list[str]:
        if is_root():
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
            if is_root():
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
                    f"listen_addresses = '{HOST}'\n"
                    f"unix_socket_directories = '{self._base()}'\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "max_connections = 200\n"
                    "max_prepared_transactions = 20\n"
                )
                conf.writelines(f"{name} = {value}\n" for name, value in self.settings.items())
            for attempt in range(3):
                self.port = free_port()
                with (self.data_dir / "postgresql.auto.conf").open("w", encoding="utf-8") as f:
                    f.write(f"port = {self.port}\n")
                try:
                    self._pg_ctl_start()
                    break
                except ServiceError:
                    if attempt == 2 or "already in use" not in tail_of(self.log_path, 20):
                        raise
            self._running = True
            self._wait_ready(began + self.start_timeout)
        except BaseException as exc:
            has_log = self.base_dir is not None and self.log_path.exists()
            log = tail_of(self.log_path) if has_log else ""
            self.stop()
            if isinstance(exc, ServiceError) and log:
                raise ServiceError(f"{exc}\n--- postgres log tail ---\n{log}") from None
            raise
        self.started_in = time.monotonic() - began
        return self

    def _pg_ctl_start(self) -> None:
        self._run(
            *[str(_pg_bin_dir() / "pg_ctl"), "start", "-D", str(self.data_dir)],
            *["-l", str(self.log_path), "-w", "-t", str(int(self.start_timeout))],
            timeout=self.start_timeout + 30,
        )

    def crash(self) -> None:
        """Stop the server as a crash would (``pg_ctl stop -m immediate``: every server
        process quits at once, without a checkpoint; what was only in shared memory,
        such as commits not yet written to the WAL, is gone). The data stays for
        :meth:`restart`. For fault tests: never on a server other tests share."""
        if not self._running:
            raise ServiceError("PostgresServer is not running")
        self._running = False
        self._run(str(_pg_bin_dir() / "pg_ctl"), "stop", "-D", str(self.data_dir),
                  "-m", "immediate", "-w", timeout=60)

    def restart(self) -> None:
        """Start a crashed or stopped server again, on the same port (it recovers from
        its WAL first), and wait until it answers."""
        began = time.monotonic()
        try:
            self._pg_ctl_start()
        except ServiceError as exc:
            raise ServiceError(f"{exc}\n--- postgres log tail ---\n"
                               f"{tail_of(self.log_path)}") from None
        self._running = True
        self._wait_ready(began + self.start_timeout)

    def _wait_ready(self, deadline: float) -> None:
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                version = run_async(lambda: pg_server_version(self.dsn))
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


async def pg_server_version(dsn: str) -> str:
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
