"""The ``flowmonkey`` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "examples" / "flows"
ORDER_INPUT = json.dumps({"order": {"id": "A-1", "shipping": "express", "items": [
    {"sku": "BANANA", "qty": 2, "price": 1.5}]}})
BIG_ORDER_INPUT = json.dumps({"order": {"id": "B-7", "items": [
    {"sku": "GOLD-BANANA", "qty": 1, "price": 999}]}})
CLI = [sys.executable, "-m", "flowmonkey.cli"]
COMMANDS = ["run", "dev", "demo", "validate", "processor", "projector", "worker", "api",
            "topics", "migrate", "replay", "rebuild", "wal", "bench", "triggers"]


def flowmonkey(*args: str, cwd: Path = ROOT, timeout: float = 60,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout


# --------------------------------------------------------------------------- run


def test_run_json_flow_prints_the_timeline() -> None:
    proc = flowmonkey("run", str(FLOWS / "order.json"), "--input", ORDER_INPUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for expected in ("execution.created", "step.started", "transition", "execution.completed",
                     "shipping -> express", "status:  completed", '"carrier": "FlyingMonkey Air"',
                     "error:   none"):
        assert expected in out, f"{expected!r} missing from:\n{out}"
    lines = [line for line in out.splitlines() if "execution.completed" in line]
    assert lines
    assert lines[0].split()[0].startswith("+"), "lines start with relative time"


def test_run_yaml_flow_with_a_simulated_wait_and_a_pipe() -> None:
    started = time.perf_counter()
    proc = flowmonkey("run", str(FLOWS / "order.yaml"), "--input", BIG_ORDER_INPUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.perf_counter() - started < 20
    out = proc.stdout
    assert "order-processing@1.1.0" in out
    assert "route -> hold" in out
    assert "time for 2 s" in out
    assert "+2.000s" in out, "the 2 s delay shows in simulated time"
    assert "pipe.row" in out
    assert "pipe.inserted" in out


def test_run_json_output_and_input_file(tmp_path: Path) -> None:
    input_file = tmp_path / "input.yaml"
    input_file.write_text("order:\n  id: Y-1\n  items: []\n")
    proc = flowmonkey("run", str(FLOWS / "order.json"), "--input-file", str(input_file),
                      "--json", "--tenant", "acme")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "completed"
    assert doc["context"]["rejection"]["result"].startswith("rejected")
    assert [e["seq"] for e in doc["events"]] == list(range(1, len(doc["events"]) + 1))
    assert doc["events"][0]["type"] == "execution.created"
    assert "acme" in proc.stdout


def test_run_failed_flow_exits_1() -> None:
    bad_qty = json.dumps({"order": {"id": "Q-1", "items": [{"qty": "many", "price": 1}]}})
    proc = flowmonkey("run", str(FLOWS / "order.json"), "--input", bad_qty)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "status:  failed" in proc.stdout
    assert "TRANSFORM_ERROR" in proc.stdout
    assert_no_traceback(proc)


@pytest.mark.parametrize("flow_file", ["order.json", "order.yaml"])
def test_run_without_input_names_the_missing_key_and_suggests_input(flow_file: str) -> None:
    proc = flowmonkey("run", str(FLOWS / flow_file))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("(input key 'order': the context has no such key, so the step's input was "
            "null)") in proc.stdout
    assert "--input JSON or --input-file PATH" in proc.stderr
    assert_no_traceback(proc)
    proc = flowmonkey("run", str(FLOWS / flow_file), "--input", '{"other": 1}', "--json")
    assert json.loads(proc.stdout)["error"]["code"] == "TRANSFORM_ERROR"
    assert "lacks what step 'validate' reads" in proc.stderr


def test_run_python_flow_waits_then_resumes() -> None:
    flow = str(FLOWS / "approval.py")
    proc = flowmonkey("run", flow, "--input", '{"amount": 250}')
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "resume token: " in proc.stdout
    assert "--resume" in proc.stdout
    proc = flowmonkey("run", flow, "--input", '{"amount": 250}',
                      "--resume", '{"approved": true, "by": "grace"}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"by": "grace"' in proc.stdout


def test_run_real_time() -> None:
    proc = flowmonkey("run", str(FLOWS / "approval.py"), "--input", '{"amount": 5}',
                      "--real-time", "--timeout-s", "20")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "real time" in proc.stdout
    assert '"by": "policy"' in proc.stdout


def test_run_with_handlers_module(tmp_path: Path) -> None:
    (tmp_path / "my_handlers.py").write_text(
        "from flowmonkey import Result, handler\n\n"
        "@handler('double')\n"
        "async def double(p):\n"
        "    return Result.success(p.input * 2)\n\n"
        "handlers = [double]\n")
    (tmp_path / "flow.json").write_text(json.dumps({
        "id": "d", "initialStepId": "a",
        "steps": {"a": {"type": "double", "input": {"type": "key", "key": "x"},
                        "outputKey": "y", "transitions": {"onSuccess": None}}}}))
    proc = flowmonkey("run", "flow.json", "--handlers", "my_handlers", "--input", '{"x": 21}',
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"y": 42' in proc.stdout
    proc = flowmonkey("run", "flow.json", "--input", '{"x": 21}', cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown handler type 'double'" in proc.stderr


@pytest.mark.parametrize(("content", "suffix", "expected"), [
    ('{"id": "x", "steps": {"a": {"type": "delay"}}}', ".json", "initialStepId"),
    ('{"id": "x", "initialStepId": "a", "steps": {"a": {"type": "delay", '
     '"transitions": {"onSuccess": "nowhere"}}}}', ".json", "transitions.onSuccess"),
    ('{"id": "x", "initialStepId": "a", "steps": {"a": {"type": "delay", '
     '"retry": {"maxAttempts": -1}}}}', ".json", "retry.maxAttempts"),
    ('{"id": "x",\n "initialStepId": "a"\n "steps": {}}', ".json", "line 3, column 2"),
    ("id: x\ninitialStepId: a\nsteps:\n  a: {type: delay\n", ".yaml", "invalid YAML at line"),
    ('{"id": "x", "initialStepId": "b", "steps": {"a": {"type": "delay"}}}', ".json",
     "initialStepId"),
])
def test_malformed_flow_exits_2_naming_the_problem(tmp_path: Path, content: str, suffix: str,
                                                   expected: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    proc = flowmonkey("run", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ")
    assert_no_traceback(proc)


@pytest.mark.parametrize(("args", "expected"), [
    (["run", "no/such/flow.json"], "file not found"),
    (["run", "no_such_module_xyz"], "no module named"),
    (["run", str(FLOWS / "order.json"), "--input", '{"a": 1,}'], "--input is not valid JSON"),
    (["run", str(FLOWS / "order.json"), "--input", "[1, 2]"], "must be a JSON object"),
    (["run", str(FLOWS / "order.json"), "--flow", "nope"], "has no flow 'nope'"),
    (["run", str(FLOWS / "order.json"), "--handlers", "no_such_module_xyz"],
     "cannot import module"),
    (["dev", "--input", "{}"], "--input needs --start"),
    (["topics"], "error: no action given; choose create"),
    (["wal"], "error: no action given; choose list, replay or compact"),
])
def test_bad_input_exits_2(args: list[str], expected: str) -> None:
    proc = flowmonkey(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in proc.stderr
    assert_no_traceback(proc)


def test_dev_refuses_an_unknown_start_flow_naming_the_flows_it_has(dev_dir: Path) -> None:
    proc = flowmonkey("dev", "--data-dir", str(dev_dir / "data"), "--flows-dir", "flows",
                      "--start", "napp", cwd=dev_dir)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: --start napp: no such flow; the flows here are nap" in proc.stderr
    assert "hint: give the file that defines it with --app or --flows-dir" in proc.stderr
    # it never ran anything, so it does not talk about executions continuing
    assert "continue on the next start" not in proc.stdout
    assert_no_traceback(proc)


def test_an_unknown_handler_type_suggests_the_closest_known_one(tmp_path: Path) -> None:
    typo = tmp_path / "typo.json"
    typo.write_text('{"id": "x", "initialStepId": "a", "steps": {"a": {"type": "transfrom"}}}')
    proc = flowmonkey("validate", str(typo))
    assert proc.returncode == 2
    assert "unknown handler type 'transfrom'; did you mean 'transform'?" in proc.stderr
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"id": "x", "initialStepId": "a", "steps": {"a": {"type": "zzz"}}}')
    proc = flowmonkey("validate", str(unknown))
    assert "the known types are batch-process, conditional, delay" in proc.stderr


def test_an_unknown_handler_type_names_the_commands_option_for_handlers(
        tmp_path: Path) -> None:
    unknown = tmp_path / "flows" / "unknown.json"
    unknown.parent.mkdir()
    unknown.write_text('{"id": "x", "initialStepId": "a", "steps": {"a": {"type": "zzz"}}}')
    proc = flowmonkey("validate", str(unknown))
    assert "pass yours with --handlers MODULE[:ATTR]" in proc.stderr
    assert "Engine(" not in proc.stderr
    # dev starts an engine: it has --app, not --handlers, and checks before it starts
    proc = flowmonkey("dev", "--data-dir", str(tmp_path / "data"), "--flows-dir", "flows",
                      cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "unknown handler type 'zzz'" in proc.stderr
    assert "pass yours with --app MODULE[:ATTR]" in proc.stderr
    assert "Engine(" not in proc.stderr
    assert "--handlers" not in proc.stderr
    assert_no_traceback(proc)


def test_debug_shows_the_traceback() -> None:
    proc = flowmonkey("run", "no/such/flow.json", "--debug")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr


# --------------------------------------------------------------------------- demo, validate


def test_demo() -> None:
    started = time.perf_counter()
    proc = flowmonkey("demo")
    took = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo OK" in proc.stdout
    assert "FAILED" not in proc.stdout
    for expected in ("step.retry", "execution.waiting", "token.used", "table order_log (3 rows)"):
        assert expected in proc.stdout
    assert took < 5, f"the demo took {took:.1f}s"


def test_validate(tmp_path: Path) -> None:
    proc = flowmonkey("validate", str(FLOWS / "order.json"), str(FLOWS / "order.yaml"),
                      str(FLOWS / "approval.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("OK ") == 3
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x", "initialStepId": "a", "steps": {"a": {"type": "nope"}}}')
    proc = flowmonkey("validate", str(FLOWS / "order.json"), str(bad))
    assert proc.returncode == 2
    assert "OK " in proc.stdout
    assert "FAIL" in proc.stderr
    assert "unknown handler type 'nope'" in proc.stderr


def test_validate_checks_step_configs_against_their_handlers(tmp_path: Path) -> None:
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({
        "id": "t", "version": "1", "initialStepId": "a",
        "steps": {"a": {"id": "a", "type": "transform", "config": {"expresion": "1 +"},
                        "transitions": {"onSuccess": "b"}},
                  "b": {"id": "b", "type": "switch",
                        "config": {"path": "x", "cases": {"1": "nowhere"}},
                        "transitions": {}}}}))
    proc = flowmonkey("validate", str(typo))
    assert proc.returncode == 2
    assert ("flow t@1, step 'a', field config.expresion: unknown config field "
            "'expresion'; did you mean 'expression'?") in proc.stderr
    assert "step 'b', field config.cases.1: unknown step 'nowhere'" in proc.stderr


def test_validate_lists_every_problem_of_a_yaml_flow_with_a_numeric_version(
        tmp_path: Path) -> None:
    flow_file = tmp_path / "v1.yaml"
    flow_file.write_text(
        "id: v1\nversion: 1\ninitialStepId: a\nsteps:\n"
        "  a:\n    type: transform\n    config: {expresion: '1'}\n"
        "    transitions: {onSuccess: nowhere}\n"
        "  b:\n    type: nope\n")
    proc = flowmonkey("validate", str(flow_file))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert_no_traceback(proc)
    lines = [line.strip() for line in proc.stderr.splitlines()]
    assert ("flow 'v1', field version: must be a string, got the number 1: quote it, e.g. "
            'version: "1" or version: "1.0.0" (YAML reads an unquoted 1 as a number)') in lines
    assert "flow 'v1', step 'a', field transitions.onSuccess: unknown step 'nowhere'" in lines
    assert any(line.startswith("flow 'v1', step 'b', field type: unknown handler type 'nope'")
               for line in lines)
    assert ("flow 'v1', step 'a', field config.expresion: unknown config field 'expresion'; "
            "did you mean 'expression'?") in lines
    proc = flowmonkey("run", str(flow_file))
    assert proc.returncode == 2
    assert proc.stderr.count("flow 'v1'") == 4, proc.stderr


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", COMMANDS)
def test_help_for_each_command(command: str) -> None:
    proc = flowmonkey(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"usage: flowmonkey {command}" in proc.stdout
    assert "example" in proc.stdout


def test_top_level_help_and_version() -> None:
    proc = flowmonkey("--help")
    assert proc.returncode == 0
    for command in COMMANDS:
        assert command in proc.stdout
    assert flowmonkey("--version").stdout.startswith("flowmonkey ")
    assert flowmonkey().returncode == 2


def test_processor_without_kafka_says_what_to_set() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLOWMONKEY_KAFKA_BOOTSTRAP"}
    proc = flowmonkey("processor", "--app", "examples/01_quickstart.py", env=env)
    assert proc.returncode == 2
    assert "set FLOWMONKEY_KAFKA_BOOTSTRAP or pass --kafka-bootstrap" in proc.stderr
    assert "flowmonkey dev" in proc.stderr
    assert_no_traceback(proc)


def test_processor_without_flows_says_what_to_give() -> None:
    proc = flowmonkey("processor", "--kafka-bootstrap", "localhost:9")
    assert proc.returncode == 2
    assert "no flows to run: give --app MODULE" in proc.stderr
    assert_no_traceback(proc)


def test_worker_without_kafka_says_what_to_set() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLOWMONKEY_KAFKA_BOOTSTRAP"}
    proc = flowmonkey("worker", "--app", "examples/15_stateful_jobs.py", env=env)
    assert proc.returncode == 2
    assert "set FLOWMONKEY_KAFKA_BOOTSTRAP or pass --kafka-bootstrap" in proc.stderr
    assert "flowmonkey dev" in proc.stderr
    assert_no_traceback(proc)


def test_worker_without_a_stateful_handler_says_what_to_give() -> None:
    proc = flowmonkey("worker", "--kafka-bootstrap", "localhost:9",
                      "--app", "examples/01_quickstart.py")
    assert proc.returncode == 2
    assert "no stateful handler to run" in proc.stderr
    assert_no_traceback(proc)


def test_worker_types_must_be_its_handlers() -> None:
    proc = flowmonkey("worker", "--kafka-bootstrap", "localhost:9",
                      "--app", "examples/15_stateful_jobs.py", "--types", "nope")
    assert proc.returncode == 2
    assert "--types: nope: not among the stateful handlers (export)" in proc.stderr
    assert_no_traceback(proc)


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "flowmonkey"
    assert script.exists(), "pip install -e . should install the `flowmonkey` script"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0


# --------------------------------------------------------------------------- dev


NAP_FLOW = """\
id: nap
version: 1.0.0
initialStepId: sleep
steps:
  sleep:
    type: delay
    config: { seconds: 1.5 }
    transitions: { onSuccess: done }
  done:
    type: transform
    config: { expression: "'rested'" }
    outputKey: mood
    transitions: { onSuccess: null }
"""


class Dev:
    """A `flowmonkey dev` process whose output is read line by line."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.lines: list[str] = []
        self._eof = False
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen([*CLI, "dev", *args], cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        for seen in self.lines:
            if text in seen:
                return seen
        while not self._eof and time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                self._eof = True
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} did not appear; output so far:\n" + self.output)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self.wait_for("stopped cleanly", timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def dev_dir(tmp_path: Path) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "nap.yaml").write_text(NAP_FLOW)
    return tmp_path


def test_dev_survives_a_restart(dev_dir: Path) -> None:
    data = str(dev_dir / "data")
    first = Dev("--data-dir", data, "--flows-dir", "flows", "--start", "nap",
                "--input", '{"who": "monkey"}', "--stats-interval", "1", cwd=dev_dir)
    try:
        started = first.wait_for("started execution")
        execution_id = started.split()[2]
        first.wait_for("execution.waiting")
        assert first.terminate() == 0, first.output
    finally:
        first.kill()
    assert "execution.completed" not in first.output, "stopped mid-wait"
    assert (dev_dir / "data" / "LOCK").exists()

    second = Dev("--data-dir", data, "--flows-dir", "flows", cwd=dev_dir)
    try:
        done = second.wait_for("execution.completed")
        assert execution_id[:8] in done
        second.wait_for("in the log: 1 execution (")
        assert second.terminate() == 0, second.output
    finally:
        second.kill()
    assert "nap@1.0.0" in second.output


def test_dev_data_dir_from_environment_and_app(dev_dir: Path) -> None:
    env = {**os.environ, "FLOWMONKEY_DATA_DIR": str(dev_dir / "env-data")}
    proc = subprocess.Popen([*CLI, "dev", "--app", str(FLOWS / "approval.py"), "--start",
                             "spend-approval", "--input", '{"amount": 500}'], cwd=dev_dir,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "token.created" in line or time.monotonic() > deadline:
                break
        assert any("token.created" in line for line in seen), "".join(seen)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, "".join(seen) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (dev_dir / "env-data" / "LOCK").exists()
    assert not (dev_dir / ".flowmonkey").exists()


def test_bench_runs_a_benchmark_of_the_checkout_passing_its_options() -> None:
    proc = flowmonkey("bench", "embedded", "--log", "memory", "--concurrency", "1",
                      "--total", "20", timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["log"], result["concurrency"], result["steps"]) == ("memory", 1, 100)
    assert result["steps_per_s"] > 0


def test_bench_without_the_checkout_says_where_the_benchmarks_are(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from flowmonkey import cli
    from flowmonkey.cli import bench as cli_bench

    monkeypatch.setattr(cli_bench, "bench_dir", lambda: tmp_path / "bench")
    assert cli.main(["bench", "kafka"]) == 2
    err = capsys.readouterr().err
    assert "the benchmarks are not here" in err
    assert "clone it" in err
