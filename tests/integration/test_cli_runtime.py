"""`flowmonkey migrate`, `topics create` and `projector` as real processes against the
test services, configured through the environment as in a deployment."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from flowmonkey.log.kafka import KafkaLog
from flowmonkey.log.topics import Topics
from flowmonkey.model.execution import ExecutionStatus
from flowmonkey.pg.schema import MIGRATIONS
from tests.integration.projector_support import append_events, fetch, run_end, run_start, until

pytestmark = pytest.mark.integration

FLOWMONKEY = str(Path(sys.executable).parent / "flowmonkey")
SECRET = "never-printed-pw"


def _with_password(dsn: str) -> str:
    """The DSN with a password in it (the test server trusts local connections, so it
    is ignored there) to check that no output ever shows it."""
    parts = urlsplit(dsn)
    if parts.password:
        return dsn
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user or 'postgres'}:{SECRET}@{host}"))


def _env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    env.update(variables)
    return env


@dataclass
class Done:
    code: int
    out: str
    err: str


async def _run(*args: str, env: dict[str, str], timeout_s: float = 120) -> Done:
    process = await asyncio.create_subprocess_exec(
        FLOWMONKEY, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(timeout_s):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


# --------------------------------------------------------------------------- migrate


async def test_migrate_creates_the_schema_then_finds_it_up_to_date(
    pg_schema: tuple[str, str],
) -> None:
    dsn, schema = pg_schema
    env = _env(FLOWMONKEY_POSTGRES_DSN=_with_password(dsn))
    first = await _run("migrate", "--schema", schema, env=env)
    assert first.code == 0, first.err
    assert f'schema "{schema}"' in first.out
    latest = MIGRATIONS[-1][0]
    everything = ", ".join(str(m[0]) for m in MIGRATIONS)
    assert f"applied migrations {everything}; now at version {latest}" in first.out
    again = await _run("migrate", "--schema", schema, env=env)
    assert again.code == 0, again.err
    assert f"is up to date at version {latest}" in again.out
    rows = await fetch(dsn, schema, "select version from fm_schema_migrations")
    assert [r["version"] for r in rows] == [m[0] for m in MIGRATIONS]
    _assert_no_secret(first.out, first.err, again.out, again.err)


async def test_migrate_without_a_dsn_says_how_to_give_one() -> None:
    done = await _run("migrate", env=_env())
    assert done.code == 2
    assert "set FLOWMONKEY_POSTGRES_DSN or pass --postgres-dsn" in done.err


async def test_migrate_against_an_unreachable_server_fails_without_showing_the_password(
) -> None:
    dsn = f"postgresql://fm:{SECRET}@127.0.0.1:1/flowmonkey"
    done = await _run("migrate", env=_env(FLOWMONKEY_POSTGRES_DSN=dsn))
    assert done.code == 1
    assert "cannot use PostgreSQL at postgresql://fm:***@127.0.0.1:1/flowmonkey" in done.err
    _assert_no_secret(done.out, done.err)


# --------------------------------------------------------------------------- topics


async def test_topics_create_creates_the_topics_once_and_then_finds_them(
    kafka_bootstrap: str, kafka_prefix: str,
) -> None:
    env = _env(FLOWMONKEY_KAFKA_BOOTSTRAP=kafka_bootstrap, FLOWMONKEY_TOPIC_PREFIX=kafka_prefix)
    topics = Topics(kafka_prefix)
    names = topics.names()
    first = await _run("topics", "create", "--partitions", "3", env=env)
    assert first.code == 0, first.err
    assert [line.split()[:2] for line in first.out.splitlines()[:7]] == [
        ["created", name] for name in names]
    assert "7 created, 0 found" in first.out
    again = await _run("topics", "create", "--partitions", "3", env=env)
    assert again.code == 0, again.err
    assert [line.split()[:2] for line in again.out.splitlines()[:7]] == [
        ["found", name] for name in names]
    assert "0 created, 7 found" in again.out
    async with KafkaLog(kafka_bootstrap, client_id=f"{kafka_prefix}check") as log:
        assert [await log.partitions_for(name) for name in names] == [3, 3, 1, 1, 3, 1, 1]


async def test_topics_create_warns_when_a_topic_has_other_partitions_than_configured(
    kafka_bootstrap: str, kafka_prefix: str,
) -> None:
    env = _env(FLOWMONKEY_KAFKA_BOOTSTRAP=kafka_bootstrap, FLOWMONKEY_TOPIC_PREFIX=kafka_prefix,
               FLOWMONKEY_PARTITIONS="2")
    assert (await _run("topics", "create", env=env)).code == 0
    done = await _run("topics", "create", "--partitions", "4", env=env)
    assert done.code == 0
    assert "has 2 partitions, not the 4 configured" in done.err


# --------------------------------------------------------------------------- projector


@dataclass
class Projector:
    """A running `flowmonkey projector` and what it printed so far."""

    process: asyncio.subprocess.Process
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            code = await self.process.wait()
            await asyncio.gather(*self.readers)
        return code


async def _read_lines(stream: asyncio.StreamReader | None, into: list[str]) -> None:
    assert stream is not None
    while line := await stream.readline():
        into.append(line.decode().rstrip("\n"))


Launch = Callable[..., Awaitable[Projector]]


@pytest.fixture
async def start_projector() -> AsyncIterator[Launch]:
    """``await start_projector(env, *args)`` runs `flowmonkey projector`; any still
    running at the end of the test is killed."""
    started: list[Projector] = []

    async def launch(env: dict[str, str], *args: str) -> Projector:
        process = await asyncio.create_subprocess_exec(
            FLOWMONKEY, "projector", *args, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        projector = Projector(process)
        projector.readers = [
            asyncio.create_task(_read_lines(process.stdout, projector.out)),
            asyncio.create_task(_read_lines(process.stderr, projector.err))]
        started.append(projector)
        return projector

    yield launch
    for projector in started:
        if projector.process.returncode is None:
            projector.process.kill()
            await projector.process.wait()


async def _completed(dsn: str, schema: str, ids: list[str]) -> bool:
    try:
        rows = await fetch(dsn, schema, "select id, status from fm_executions")
    except Exception:  # the projector has not created the tables yet
        return False
    done = {r["id"] for r in rows if r["status"] == ExecutionStatus.COMPLETED.value}
    return set(ids) <= done


def _applied_lines(projector: Projector) -> list[str]:
    return [line for line in projector.out if "events applied (+" in line]


async def test_the_projector_projects_until_sigterm_and_a_restart_resumes_where_it_stopped(
    kafka_bootstrap: str, kafka_prefix: str, pg_schema: tuple[str, str],
    start_projector: Launch,
) -> None:
    dsn, schema = pg_schema
    env = _env(FLOWMONKEY_KAFKA_BOOTSTRAP=kafka_bootstrap, FLOWMONKEY_TOPIC_PREFIX=kafka_prefix,
               FLOWMONKEY_POSTGRES_DSN=_with_password(dsn), FLOWMONKEY_PARTITIONS="3")
    assert (await _run("topics", "create", env=env)).code == 0
    args = ("--schema", schema, "--group", f"{kafka_prefix}projector", "--progress-every", "0.5")
    events = Topics(kafka_prefix).events
    first_ids, later_ids = [f"a{i}" for i in range(10)], [f"b{i}" for i in range(6)]
    async with KafkaLog(kafka_bootstrap, client_id=f"{kafka_prefix}publisher") as log:
        await append_events(log, events, [e for i in first_ids for e in run_start(i)])
        await append_events(log, events, [e for i in first_ids for e in run_end(i)])

        # given a projector started on an empty schema: it migrates and projects
        first = await start_projector(env, *args)
        await until(lambda: _completed(dsn, schema, first_ids), "the first runs to be projected")
        await until(lambda: any(" 50 events applied" in line for line in _applied_lines(first)),
                    "a progress line with the applied events")
        # when it gets SIGTERM, it stops cleanly, saying how much it applied
        assert await first.stop() == 0, first.err
        assert first.out[-1] == "projector: stopped; 50 events applied"
        assert any(f'migrated schema "{schema}"' in line for line in first.out)
        assert any("lag " in line and "ms" in line for line in _applied_lines(first))

        # then a new projector applies only what arrived while none was running
        await append_events(log, events,
                            [e for i in later_ids for e in [*run_start(i), *run_end(i)]])
        # (waiting for each batch's WAL flush changes nothing of what it applies)
        second = await start_projector(env, *args, "--synchronous-commit", "on")
        await until(lambda: _completed(dsn, schema, later_ids), "the later runs to be projected")
        await until(lambda: any(" 30 events applied" in line for line in _applied_lines(second)),
                    "the second projector's progress line")
        assert await second.stop() == 0, second.err
        assert second.out[-1] == "projector: stopped; 30 events applied"
    rows = await fetch(dsn, schema, "select count(*) as n from fm_events")
    assert rows[0]["n"] == 5 * len(first_ids + later_ids)
    _assert_no_secret(*first.out, *first.err, *second.out, *second.err)


async def test_the_projector_refuses_an_offset_stored_past_the_end_of_the_log(
    pg_schema: tuple[str, str], tmp_path: Path,
) -> None:
    dsn, schema = pg_schema
    env = _env(FLOWMONKEY_DATA_DIR=str(tmp_path), FLOWMONKEY_POSTGRES_DSN=dsn)
    assert (await _run("migrate", "--schema", schema, env=env)).code == 0
    # given an offset the (empty) log does not have: it lost records, or was made again
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'insert into "{schema}".fm_projection_offsets values '
                           "('flowmonkey-projector', 'flowmonkey.events', 0, 99)")
    finally:
        await conn.close()
    done = await _run("projector", "--schema", schema, env=env)
    assert done.code == 1, done.err
    assert "flowmonkey.events[0] is 99, past the end of the log's partition (0)" in done.err
    assert "flowmonkey rebuild" in done.err


async def test_the_projector_without_a_log_says_what_to_set(pg_schema: tuple[str, str]) -> None:
    dsn, _ = pg_schema
    done = await _run("projector", env=_env(FLOWMONKEY_POSTGRES_DSN=dsn))
    assert done.code == 2
    assert "set FLOWMONKEY_KAFKA_BOOTSTRAP or pass --kafka-bootstrap" in done.err


async def test_the_projector_on_missing_topics_says_to_create_them(
    kafka_bootstrap: str, kafka_prefix: str, pg_schema: tuple[str, str],
) -> None:
    dsn, schema = pg_schema
    env = _env(FLOWMONKEY_KAFKA_BOOTSTRAP=kafka_bootstrap, FLOWMONKEY_TOPIC_PREFIX=kafka_prefix,
               FLOWMONKEY_POSTGRES_DSN=dsn)
    done = await _run("projector", "--schema", schema, env=env)
    assert done.code == 1
    assert "flowmonkey topics create" in done.err
