"""The deployment files in ``deploy/``, checked without a Docker engine.

No Docker runs here, so ``deploy/docker-compose.yml`` is checked for what can go wrong
on FlowMonkey's side: it parses, every service has an image or a build, every
``flowmonkey`` command and option it runs exists in the CLI, every ``FLOWMONKEY_*``
variable it sets is one :mod:`flowmonkey.settings` reads (with values it accepts),
``depends_on`` names services that exist, the files it mounts exist, and the example
app loads, validates and runs. The compose file is not checked against the Compose
JSON schema here: no package this project depends on ships it. To check it by hand,
``check-jsonschema --builtin-schema vendor.compose-spec deploy/docker-compose.yml``
(the check-jsonschema package carries the schema).

The last test runs what the compose file runs, as real processes on the test
services (Kafka and PostgreSQL): topics create, migrate, a processor with
``--app deploy/app.py``, a projector and ``deploy/place_orders.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from flowmonkey import settings as settings_module
from flowmonkey.settings import Settings
from tests.process_support import Service

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
README = ROOT / "README.md"
FLOWMONKEY = str(Path(sys.executable).with_name("flowmonkey"))
# the variables flowmonkey/settings.py reads: its ENV_* constants
SETTINGS_VARIABLES = {value for name, value in vars(settings_module).items()
                      if name.startswith("ENV_") and isinstance(value, str)}


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    assert found
    return found


def flowmonkey_services() -> dict[str, dict[str, Any]]:
    """The services that run the FlowMonkey image (built from deploy/Dockerfile)."""
    return {name: s for name, s in services().items() if "build" in s}


def flowmonkey_argvs(service: dict[str, Any]) -> list[list[str]]:
    """The ``flowmonkey`` command lines a service runs (without ``flowmonkey``): its
    ``command`` under the image's entrypoint, or each ``flowmonkey …`` of a shell
    script given to ``sh -c``."""
    entrypoint = service.get("entrypoint")
    command = service.get("command", [])
    if entrypoint is None:
        assert isinstance(command, list), "give commands as lists: no shell splitting"
        return [command]
    if entrypoint[:2] == ["/bin/sh", "-c"]:
        script = " ".join(command)
        argvs = []
        for part in re.split(r"&&|;|\|\|", script):
            words = shlex.split(part)
            if words and words[0] == "flowmonkey":
                argvs.append(words[1:])
        return argvs
    return []


def sub_command(argv: list[str]) -> list[str]:
    """``["topics", "create"]`` from ``["topics", "create", "--x", "y"]``."""
    words: list[str] = []
    for word in argv:
        if word.startswith("-"):
            break
        words.append(word)
    return words


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLOWMONKEY, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


# --------------------------------------------------------------------------- compose


def test_the_compose_file_parses_and_every_service_has_an_image_or_a_build() -> None:
    for name, service in services().items():
        assert service.get("image") or service.get("build"), f"{name}: no image, no build"
        build = service.get("build")
        if build is not None:
            context = (COMPOSE.parent / build["context"]).resolve()
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
            assert (context / "pyproject.toml").is_file(), f"{name}: context is not the repo"
    assert set(services()) >= {"kafka", "postgres", "init", "processor", "projector", "api"}


def test_every_flowmonkey_command_and_option_it_runs_exists_in_the_cli() -> None:
    ran: set[tuple[str, ...]] = set()
    helps: dict[tuple[str, ...], str] = {}
    for name, service in flowmonkey_services().items():
        for argv in flowmonkey_argvs(service):
            command = tuple(sub_command(argv))
            assert command, f"{name}: runs flowmonkey without a command"
            if command not in helps:
                proc = run_cli(*command, "--help")
                assert proc.returncode == 0, f"{name}: flowmonkey {' '.join(command)}: " \
                    f"{proc.stderr}"
                helps[command] = proc.stdout
            for option in (word.split("=")[0] for word in argv if word.startswith("--")):
                assert re.search(rf"(^|\s|\[){re.escape(option)}\b", helps[command]), \
                    f"{name}: flowmonkey {' '.join(command)} has no option {option}"
            ran.add(command)
    assert ran == {("topics", "create"), ("migrate",), ("processor",), ("projector",),
                   ("api",)}


def test_init_runs_topics_create_then_migrate() -> None:
    argvs = flowmonkey_argvs(services()["init"])
    assert [sub_command(a) for a in argvs] == [["topics", "create"], ["migrate"]]
    # `&&`: migrate only after the topics were created, and a failure fails init
    assert "&&" in " ".join(services()["init"]["command"])
    assert services()["init"]["restart"] == "no"


def test_every_flowmonkey_variable_it_sets_is_one_the_settings_read() -> None:
    for name, service in flowmonkey_services().items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: give environment as a mapping"
        variables = {key for key in env if key.startswith("FLOWMONKEY_")}
        assert variables <= SETTINGS_VARIABLES, \
            f"{name}: unknown {sorted(variables - SETTINGS_VARIABLES)}"
        # and the values are ones the settings accept
        settings = Settings.from_env({k: str(v) for k, v in env.items()})
        assert settings.log_kind == "kafka", name
        assert settings.postgres_dsn, name
        assert settings.exactly_once, name


def test_depends_on_names_services_that_exist_and_waits_for_health() -> None:
    all_services = services()
    for name, service in all_services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in all_services, f"{name} depends on unknown {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in all_services[dependency], \
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
    init = all_services["init"]["depends_on"]
    assert init == {"kafka": {"condition": "service_healthy"},
                    "postgres": {"condition": "service_healthy"}}
    for name in ("processor", "projector"):
        assert all_services[name]["depends_on"]["init"] == \
            {"condition": "service_completed_successfully"}, name


def test_kafka_is_a_pinned_single_node_kraft_broker() -> None:
    kafka = services()["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"]), kafka["image"]
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert str(env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"]) == "0"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert str(env[key]) == "1", key
    # the events topic is the source of truth: nothing may expire from it
    assert str(env["KAFKA_LOG_RETENTION_MS"]) == "-1"
    # the containers reach the broker at the address the services are given
    bootstrap = services()["processor"]["environment"]["FLOWMONKEY_KAFKA_BOOTSTRAP"]
    assert f"PLAINTEXT://{bootstrap}" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_postgres_is_a_pinned_15_whose_credentials_match_the_dsn() -> None:
    postgres = services()["postgres"]
    assert re.fullmatch(r"postgres:15\.\d+", postgres["image"]), postgres["image"]
    env = postgres["environment"]
    dsn = services()["projector"]["environment"]["FLOWMONKEY_POSTGRES_DSN"]
    assert dsn == (f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}"
                   f"@postgres:5432/{env['POSTGRES_DB']}")


def test_two_processors_load_the_mounted_example_app() -> None:
    processor = services()["processor"]
    assert processor["deploy"]["replicas"] == 2
    argv = processor["command"]
    assert argv[argv.index("--app") + 1] == "/app/app.py"
    assert "./app.py:/app/app.py:ro" in processor["volumes"]


def test_every_mounted_file_exists() -> None:
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).is_file(), f"{name}: {source} is missing"


def test_the_orders_client_is_a_one_shot_behind_a_profile() -> None:
    orders = services()["orders"]
    assert orders["profiles"] == ["client"]
    assert orders["restart"] == "no"
    script = orders["entrypoint"][-1]
    assert f"./{Path(script).name}:{script}:ro" in orders["volumes"]


def test_the_api_is_behind_a_profile_with_its_keys_from_the_shell() -> None:
    api = services()["api"]
    assert api["profiles"] == ["api"]
    argv = api["command"]
    port = argv[argv.index("--port") + 1]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"  # reachable through the mapping
    assert api["ports"] == [f"127.0.0.1:{port}:{port}"]
    # the keys are never in the file: compose takes them from the shell
    assert api["environment"]["FLOWMONKEY_API_KEYS"] == "${FLOWMONKEY_API_KEYS:-}"
    assert f"127.0.0.1:{port}/health" in " ".join(api["healthcheck"]["test"])
    proc = run_cli("api", env={k: v for k, v in os.environ.items()
                               if not k.startswith("FLOWMONKEY_")})
    assert proc.returncode == 2  # without keys it refuses to start, saying why
    assert "FLOWMONKEY_API_KEYS" in proc.stderr


# --------------------------------------------------------------------------- image


def test_the_dockerfile_installs_the_package_for_a_non_root_user() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    image = next(line for line in lines if line.startswith("ARG PYTHON_IMAGE="))
    version = re.search(r"python:(\d+)\.(\d+)-slim", image)
    assert version, image
    assert (int(version[1]), int(version[2])) >= (3, 11), image
    assert 'ENTRYPOINT ["flowmonkey"]' in lines
    user = [line for line in lines if line.startswith("USER ")]
    assert user, "the image runs as root"
    assert user[-1] not in ("USER root", "USER 0"), user
    for line in lines:
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"COPY of a missing {source}"


# --------------------------------------------------------------------------- example app


def test_the_example_app_validates() -> None:
    proc = run_cli("validate", str(DEPLOY / "app.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "order-fulfilment" in proc.stdout


def test_the_example_order_is_charged_on_its_second_attempt_after_a_wait() -> None:
    order = {"order": {"id": "A-1", "items": [{"sku": "X", "qty": 2, "price": 5}]}}
    proc = run_cli("run", str(DEPLOY / "app.py"), "--input", json.dumps(order), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "completed"
    assert result["context"]["payment"]["attempt"] == 2
    types = [event["type"] for event in result["events"]]
    assert types.count("step.retry") == 1
    assert types.count("execution.waiting") == 2  # the retry's backoff and the delay


def test_an_example_order_without_items_fails() -> None:
    order = {"order": {"id": "A-2", "items": []}}
    proc = run_cli("run", str(DEPLOY / "app.py"), "--input", json.dumps(order), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["error"]["code"] == "EMPTY_ORDER"


# --------------------------------------------------------------------------- README


def test_the_readme_names_every_setting_and_command_of_the_deployment() -> None:
    text = README.read_text()
    section = text.split("## Running on Kafka and PostgreSQL", 1)[1].split("\n## ", 1)[0]
    for variable in SETTINGS_VARIABLES:
        assert variable in section, variable
    for command in ("flowmonkey topics create", "flowmonkey migrate",
                    "flowmonkey processor --app", "flowmonkey projector",
                    "deploy/docker-compose.yml", "FLOWMONKEY_TEST_KAFKA_BOOTSTRAP",
                    "FLOWMONKEY_TEST_POSTGRES_DSN"):
        assert command in section, command
    # the two set-up commands stay first
    assert text.index("make demo") < text.index("make test") < text.index("## A first flow")


# --------------------------------------------------------------------------- real services


async def _statuses(dsn: str, schema: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f'select status, count(*) as n from "{schema}".fm_executions group by status')
        return {row["status"]: row["n"] for row in rows}
    finally:
        await conn.close()


@pytest.mark.integration
@pytest.mark.slow
def test_the_compose_recipe_runs_orders_on_real_kafka_and_postgres(
        kafka_bootstrap: str, kafka_prefix: str, pg_schema: tuple[str, str],
        running: list[Service], tmp_path: Path) -> None:
    dsn, schema = pg_schema
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    env.update({"FLOWMONKEY_KAFKA_BOOTSTRAP": kafka_bootstrap,
                "FLOWMONKEY_TOPIC_PREFIX": kafka_prefix.rstrip("-"),
                "FLOWMONKEY_PARTITIONS": "4", "FLOWMONKEY_EXACTLY_ONCE": "true",
                "FLOWMONKEY_POSTGRES_DSN": dsn})
    # init: topics, then migrations
    for args in (["topics", "create"], ["migrate", "--schema", schema]):
        proc = run_cli(*args, env=env, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # a processor with the example app and a projector
    running.append(Service("processor", [FLOWMONKEY, "processor", "--app",
                                         str(DEPLOY / "app.py")], env,
                           tmp_path / "processor.out"))
    running.append(Service("projector", [FLOWMONKEY, "projector", "--schema", schema],
                           env, tmp_path / "projector.out"))
    for service in running:
        service.wait_for("Ctrl-C to stop", 90)
    # the client places 3 orders: two complete, the one without items fails
    client = subprocess.run([sys.executable, str(DEPLOY / "place_orders.py"), "--count", "3",
                             "--timeout-s", "60"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=180, check=False)
    assert client.returncode == 0, client.stdout + client.stderr
    assert "3 orders ended" in client.stdout
    # and the projector brought them to PostgreSQL
    deadline = time.monotonic() + 60
    while (counts := asyncio.run(_statuses(dsn, schema))) != {"completed": 2, "failed": 1}:
        assert time.monotonic() < deadline, f"projection: {counts}\n{running[1].text()}"
        time.sleep(0.2)


def test_place_orders_over_the_http_api(running: list[Service], tmp_path: Path) -> None:
    """``place_orders.py --api`` against ``flowmonkey api`` (the in-memory engine with
    the example app): two orders complete, the one without items fails."""
    doc = (DEPLOY / "place_orders.py").read_text()
    assert "placeholder" not in doc
    assert "There is no HTTP API" not in doc
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWMONKEY_")}
    running.append(Service("api", [FLOWMONKEY, "api", "--no-auth", "--app",
                                   str(DEPLOY / "app.py"), "--port", str(port)], env,
                           tmp_path / "api.out"))
    running[0].wait_for("Ctrl-C to stop", 60)
    client = subprocess.run([sys.executable, str(DEPLOY / "place_orders.py"), "--count", "3",
                             "--timeout-s", "60", "--api", f"http://127.0.0.1:{port}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert client.returncode == 0, client.stdout + client.stderr
    assert "3 orders ended" in client.stdout
    assert "0 not as expected" in client.stdout
    assert "order 3: failed EMPTY_ORDER" in client.stdout
