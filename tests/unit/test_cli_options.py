"""The CLI's layout and its shared options: every command's parser builds, and an option
that several service commands take (added by one builder of ``cli/options.py``) has the
same name, destination and default in each."""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowmonkey
from flowmonkey.cli import build_parser
from flowmonkey.cli.options import (
    SETTINGS_OPTIONS,
    add_log_format_option,
    add_metrics_options,
    add_settings_options,
)

SERVICES = ("processor", "projector", "api", "dev", "trigger-consumer")

# the option blocks each service command takes, by builder
CONNECTIONS = {"--kafka-bootstrap", "--topic-prefix", "--kafka-security-protocol",
               "--kafka-sasl-mechanism", "--kafka-sasl-username", "--kafka-ssl-cafile",
               "--kafka-ssl-certfile", "--kafka-ssl-keyfile", "--postgres-dsn"}
METRICS = {"--metrics-port", "--metrics-host"}
APP = {"--app", "--flows-dir", "--allow-private-http"}
BLOCKS = {
    "processor": CONNECTIONS | METRICS | APP | {"--schema", "--log-format", "--no-tune-gc",
                                                "--progress-every", "--replication-factor",
                                                "--partitions"},
    "projector": CONNECTIONS | METRICS | {"--schema", "--log-format", "--no-tune-gc",
                                          "--progress-every", "--data-dir"},
    "api": CONNECTIONS | APP | {"--schema", "--log-format", "--replication-factor",
                                "--partitions", "--data-dir"},
    "dev": APP | {"--input", "--input-file"},
    "trigger-consumer": (CONNECTIONS - {"--postgres-dsn"}) | METRICS | {
        "--app", "--log-format", "--no-tune-gc", "--progress-every"},
}

# options that differ between commands on purpose
DIFFERENT = {
    # each its own consumer group
    ("--group", "processor"), ("--group", "projector"),
    # dev creates its own data directory (default ./.flowmonkey) with its own partitions
    ("--data-dir", "dev"), ("--partitions", "dev"),
}


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
             ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _command(name: str) -> argparse.ArgumentParser:
    return dict(_parsers(build_parser()))[(name,)]


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def _signature(action: argparse.Action) -> tuple[Any, ...]:
    return (type(action).__name__, action.dest, action.default, action.type, action.nargs,
            action.choices, action.metavar, action.required)


COMMAND_PATHS = [path for path, _ in _parsers(build_parser())]


def test_the_package_root_holds_no_cli_modules() -> None:
    root = Path(flowmonkey.__file__).parent
    assert sorted(p.name for p in root.glob("cli*.py")) == []
    assert (root / "cli" / "__init__.py").is_file()
    assert (root / "cli" / "__main__.py").is_file()


def test_every_command_of_the_old_layout_is_there() -> None:
    commands = {path[0] for path in COMMAND_PATHS if len(path) == 1}
    assert commands == {"run", "dev", "demo", "validate", "processor", "projector", "worker",
                        "api", "topics", "migrate", "replay", "rebuild", "wal", "log",
                        "bench", "jobs", "triggers", "trigger-consumer"}


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "flowmonkey")
def test_every_command_parser_builds_and_prints_its_help(
        path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: flowmonkey {' '.join(path)}".rstrip())
    assert "--debug" in out


def test_the_entry_point_is_the_main_function_even_after_the_commands_load() -> None:
    import flowmonkey.cli
    import flowmonkey.cli.commands  # importing a submodule sets an attribute of its package

    assert inspect.isfunction(flowmonkey.cli.main)
    assert inspect.isfunction(flowmonkey.cli.build_parser)
    pyproject = Path(flowmonkey.__file__).parent.parent / "pyproject.toml"
    if pyproject.is_file():
        assert 'flowmonkey = "flowmonkey.cli:main"' in pyproject.read_text()


def test_python_dash_m_runs_the_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "flowmonkey.cli", "--version"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("flowmonkey ")


@pytest.mark.parametrize("command", SERVICES)
def test_each_service_command_has_its_option_blocks(command: str) -> None:
    missing = BLOCKS[command] - set(_options(_command(command)))
    assert not missing, f"flowmonkey {command} lacks {sorted(missing)}"


def test_an_option_shared_by_service_commands_is_the_same_in_each() -> None:
    seen: dict[str, dict[str, tuple[Any, ...]]] = {}
    for command in SERVICES:
        for flag, action in _options(_command(command)).items():
            if (flag, command) not in DIFFERENT:
                seen.setdefault(flag, {})[command] = _signature(action)
    shared = {flag: by_command for flag, by_command in seen.items() if len(by_command) > 1}
    assert {"--app", "--flows-dir", "--allow-private-http", "--kafka-bootstrap",
            "--schema", "--log-format", "--metrics-port", "--progress-every"} <= set(shared)
    differing = {flag: by_command for flag, by_command in shared.items()
                 if any(sig != next(iter(by_command.values()))
                        for sig in by_command.values())}
    assert differing == {}


def test_every_settings_option_is_built_with_the_destination_settings_read() -> None:
    parser = argparse.ArgumentParser()
    add_settings_options(parser)
    add_metrics_options(parser)
    add_log_format_option(parser)
    options = _options(parser)
    for dest, (flag, _variable) in SETTINGS_OPTIONS.items():
        assert flag in options, flag
        assert options[flag].dest == dest


def test_bench_finds_the_benchmarks_beside_the_package_from_its_new_place() -> None:
    from flowmonkey.cli.bench import bench_dir

    assert bench_dir() == Path(flowmonkey.__file__).resolve().parent.parent / "bench"


def test_every_benchmark_bench_names_is_a_script_in_bench() -> None:
    from flowmonkey.cli.bench import BENCHMARKS, bench_dir

    for name, (script, _what) in BENCHMARKS.items():
        assert (bench_dir() / script).is_file(), name
