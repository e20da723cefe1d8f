"""Shared pieces of the CLI: its error and exit codes, reading input, and loading flows,
handlers and tables from files, modules and ``--app``. The option builders are in
:mod:`flowmonkey.cli.options`, events for humans in :mod:`flowmonkey.cli.format`.

Nothing here imports the engine at module level, so ``flowmonkey --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

    from flowmonkey.handlers.base import StepHandler
    from flowmonkey.model.flow import Flow
    from flowmonkey.model.form import Form
    from flowmonkey.model.tables import TableDef
    from flowmonkey.model.trigger import Trigger

D = TypeVar("D", bound="BaseModel")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_WAITING = 3

FLOW_SUFFIXES = (".json", ".yaml", ".yml")
_MODULE_NAME = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w.]*)?$")


class CliError(Exception):
    """A problem the user can fix; printed without a traceback (unless ``--debug``)."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT,
                 hint: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.hint = hint


# --------------------------------------------------------------------------- input


def parse_json_text(text: str, what: str) -> Any:
    """``text`` parsed as JSON; ``what`` names it in errors, starting with its option
    (``--resume #2``), which the hint's example then uses."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        option = what.split()[0]
        raise CliError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                       f"column {exc.colno}",
                       hint=f"quote JSON for the shell, e.g. {option} '{{\"key\": \"value\"}}'"
                       ) from None


def read_document(path: Path) -> Any:
    """A JSON or YAML file as plain data; errors name the line and column."""
    if not path.exists():
        raise CliError(f"file not found: {path}")
    if path.is_dir():
        raise CliError(f"{path} is a directory, not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise CliError(f"{path}: invalid YAML{where}: {problem}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                       f"{exc.msg}") from None


_YAML_LOADER: Any = None


def _yaml_loader() -> Any:
    """SafeLoader with YAML 1.2 booleans: only true/false, so ``on: success`` in a
    pipe stays the key "on" (YAML 1.1 reads on/off/yes/no as booleans)."""
    global _YAML_LOADER
    if _YAML_LOADER is None:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        bool_tag = "tag:yaml.org,2002:bool"
        Loader.yaml_implicit_resolvers = {
            first: [(tag, regexp) for tag, regexp in resolvers if tag != bool_tag]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }
        Loader.add_implicit_resolver(
            bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
        _YAML_LOADER = Loader
    return _YAML_LOADER


def read_input(input_json: str | None, input_file: str | None) -> dict[str, Any]:
    """The execution's initial context from ``--input`` or ``--input-file``."""
    if input_json is not None and input_file is not None:
        raise CliError("give either --input or --input-file, not both")
    if input_file is not None:
        data = read_document(Path(input_file))
        what = input_file
    elif input_json is not None:
        data = parse_json_text(input_json, "--input")
        what = "--input"
    else:
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CliError(f"{what} must be a JSON object (the execution's context), got "
                       f"{type(data).__name__}",
                       hint='wrap the value in an object, e.g. {"order": ...}')
    return data


# --------------------------------------------------------------------------- loading


@dataclass(slots=True)
class Bundle:
    """What a flow file, module or app provides."""

    flows: list[Flow] = field(default_factory=list)
    handlers: list[StepHandler] = field(default_factory=list)
    tables: list[TableDef] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    forms: list[Form] = field(default_factory=list)

    def extend(self, other: Bundle) -> None:
        self.flows.extend(other.flows)
        self.handlers.extend(other.handlers)
        self.tables.extend(other.tables)
        self.triggers.extend(other.triggers)
        self.forms.extend(other.forms)


def _flow_or_problems(raw: Any, source: str, handlers: Sequence[StepHandler] | None,
                      tables: Sequence[TableDef]) -> Flow | list[str]:
    """The parsed flow, or every problem of it (with ``handlers``, those of its handler
    types and step configs too)."""
    from flowmonkey.errors import FlowValidationError
    from flowmonkey.model.flow import Flow, with_more_problems

    if isinstance(raw, Flow):
        return raw
    if not isinstance(raw, Mapping):
        raise CliError(f"{source}: a flow must be an object with id, initialStepId and steps, "
                       f"got {type(raw).__name__}")
    try:
        return Flow.parse(dict(raw))
    except FlowValidationError as exc:
        if handlers is None or not isinstance(exc.salvaged, Flow):
            return exc.problems
        from flowmonkey.handlers.config_check import config_problems

        known = _with_subflow(handlers)
        return with_more_problems(exc, [h.metadata.type for h in known],
                                  {t.id: t for t in tables},
                                  config_problems(exc.salvaged, known),
                                  handler_hint="pass yours with --handlers MODULE[:ATTR]"
                                  ).problems


def _parse_flows(flows_raw: Iterable[Any], source: str,
                 handlers: Sequence[StepHandler] | None = None,
                 tables: Sequence[TableDef] = ()) -> list[Flow]:
    """Every flow of ``flows_raw``; CliError listing the problems of every invalid one."""
    flows: list[Flow] = []
    problems: list[str] = []
    for raw in flows_raw:
        parsed = _flow_or_problems(raw, source, handlers, tables)
        if isinstance(parsed, list):
            problems += parsed
        else:
            flows.append(parsed)
    if problems:
        raise CliError(f"{source}: invalid flow:\n  " + "\n  ".join(problems))
    return flows


def _parse_table(raw: Any, source: str) -> TableDef:
    from pydantic import ValidationError

    from flowmonkey.model.flow import json_path
    from flowmonkey.model.tables import TableDef

    if isinstance(raw, TableDef):
        return raw
    try:
        return TableDef.model_validate(raw)
    except ValidationError as exc:
        table_id = raw.get("id") if isinstance(raw, Mapping) else None
        lines = [f"table {table_id!r}, field {json_path(e['loc']) or '(table)'}: "
                 f"{e['msg']}" for e in exc.errors()]
        raise CliError(f"{source}: invalid table:\n  " + "\n  ".join(lines)) from None


def _parse_triggers(raw: Any, source: str) -> list[Trigger]:
    """The triggers of a ``triggers`` section or attribute; CliError listing the
    problems of every invalid one."""
    from flowmonkey.runtime import trigger_defs

    return _parse_definitions(raw, source, "trigger", trigger_defs.parse_triggers,
                              trigger_defs.cross_problems)


def _parse_forms(raw: Any, source: str) -> list[Form]:
    """The forms of a ``forms`` section or attribute; CliError listing the problems of
    every invalid one."""
    from flowmonkey.runtime import form_defs

    return _parse_definitions(raw, source, "form", form_defs.parse_forms,
                              form_defs.cross_problems)


def _parse_definitions(raw: Any, source: str, what: str,
                       parse: Callable[[Iterable[Any]], tuple[list[D], list[str]]],
                       cross: Callable[[Sequence[D]], list[str]]) -> list[D]:
    from flowmonkey.runtime.definitions import unique

    if not isinstance(raw, list | tuple):
        raise CliError(f"{source}: \"{what}s\" must be a list of {what}s, got "
                       f"{type(raw).__name__}")
    found, problems = parse(raw)
    problems += cross(found)
    if problems:
        raise CliError(f"{source}: invalid {what}:\n  " + "\n  ".join(problems))
    return unique(found)


def bundle_from_document(data: Any, source: str,
                         handlers: Sequence[StepHandler] | None = None) -> Bundle:
    """A flow object, a list of flows, or ``{"flows": [...], "tables": [...]}``, each
    with optional ``triggers`` and ``forms`` lists beside (a flow object's sections are
    taken out of it), or ``{"triggers": [...]}`` / ``{"forms": [...]}`` alone: a
    trigger or form file. An invalid flow, trigger or form is refused with all its
    problems (with ``handlers``, those of its handler types and step configs too)."""
    tables_raw: Any = []
    triggers: list[Trigger] = []
    forms: list[Form] = []
    if isinstance(data, Mapping) and ("triggers" in data or "forms" in data):
        if "triggers" in data:
            triggers = _parse_triggers(data["triggers"], source)
        if "forms" in data:
            forms = _parse_forms(data["forms"], source)
        data = {k: v for k, v in data.items() if k not in ("triggers", "forms")}
        if not data:
            return Bundle(triggers=triggers, forms=forms)
    if isinstance(data, list):
        flows_raw: Any = data
    elif isinstance(data, Mapping) and "flows" in data and "steps" not in data:
        flows_raw = data["flows"]
        tables_raw = data.get("tables") or []
    elif isinstance(data, Mapping):
        flows_raw = [data]
    else:
        raise CliError(f"{source}: expected a flow object, a list of flows, or "
                       f"{{\"flows\": [...], \"tables\": [...]}}; got "
                       f"{'an empty file' if data is None else type(data).__name__}")
    if not isinstance(flows_raw, list) or not isinstance(tables_raw, list):
        raise CliError(f"{source}: \"flows\" and \"tables\" must be lists")
    if not flows_raw:
        raise CliError(f"{source}: no flows found")
    tables = [_parse_table(t, source) for t in tables_raw]
    return Bundle(flows=_parse_flows(flows_raw, source, handlers, tables), tables=tables,
                  triggers=triggers, forms=forms)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return [value]


def handlers_from(value: Any, source: str) -> list[StepHandler]:
    """Handlers from a list (or a single one); handler classes are instantiated."""
    found: list[StepHandler] = []
    for item in _as_list(value):
        candidate = item() if isinstance(item, type) else item
        meta = getattr(candidate, "metadata", None)
        if meta is None or not callable(getattr(candidate, "execute", None)):
            raise CliError(f"{source}: {item!r} is not a handler",
                           hint="decorate an async function with @handler('type') or "
                                "subclass flowmonkey.Handler")
        found.append(candidate)
    return found


def bundle_from_object(obj: Any, source: str) -> Bundle:
    """``flows`` (or ``flow``), ``handlers``, ``tables``, ``triggers`` and ``forms``
    attributes of a module or object."""
    flows_value = getattr(obj, "flows", None)
    if flows_value is None:
        flows_value = getattr(obj, "flow", None)
    bundle = Bundle(
        flows=_parse_flows(_as_list(flows_value), source),
        handlers=handlers_from(getattr(obj, "handlers", None), source),
        tables=[_parse_table(t, source) for t in _as_list(getattr(obj, "tables", None))],
        triggers=_parse_triggers(_as_list(getattr(obj, "triggers", None)), source),
        forms=_parse_forms(_as_list(getattr(obj, "forms", None)), source),
    )
    return bundle


def _ensure_cwd_on_path() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def import_module_or_file(spec: str) -> tuple[ModuleType, str | None]:
    """``package.module[:attr]`` or ``path/to/file.py[:attr]`` -> (module, attr)."""
    target, _, attr = spec.partition(":")
    if spec.count(":") > 1 or (":" in spec and not attr):
        raise CliError(f"{spec!r}: expected MODULE[:ATTRIBUTE] or FILE.py[:ATTRIBUTE]")
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target)
        if not path.exists():
            raise CliError(f"file not found: {path}")
        return _import_file(path), attr or None
    if not _MODULE_NAME.match(spec):
        raise CliError(f"{spec!r} is neither a file nor a module name (MODULE[:ATTRIBUTE])")
    _ensure_cwd_on_path()
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise CliError(f"cannot import module {target!r}: no module named {exc.name!r}",
                           hint="run from the directory that contains it, or set PYTHONPATH"
                           ) from exc
        raise CliError(f"cannot import module {target!r}: {exc}") from exc
    except Exception as exc:
        raise CliError(f"importing {target!r} failed: {type(exc).__name__}: {exc}") from exc
    return module, attr or None


def _import_file(path: Path) -> ModuleType:
    resolved = path.resolve()
    name = "_flowmonkey_user_" + re.sub(r"\W", "_", resolved.stem)
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    parent = str(resolved.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)  # so the file can import its siblings
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise CliError(f"loading {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _attribute(module: ModuleType, attr: str, spec: str) -> Any:
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise CliError(f"{spec}: {module.__name__} has no attribute {attr!r}")
        value = getattr(value, part)
    return value


def load_flow_source(spec: str, handlers: Sequence[StepHandler] | None = None) -> Bundle:
    """FLOW_FILE of ``run``/``validate``: JSON, YAML, a .py file or a module name
    (``handlers``: those a JSON or YAML flow is checked against when it does not parse)."""
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in FLOW_SUFFIXES:
        return bundle_from_document(read_document(path), spec, handlers)
    if spec.partition(":")[0].endswith(".py"):
        module, attr = import_module_or_file(spec)
    elif path.is_dir():
        raise CliError(f"{spec} is a directory; give a flow file")
    elif path.exists():
        raise CliError(f"{spec}: unsupported file type {suffix or '(none)'!r}",
                       hint="flow files are .json, .yaml/.yml or .py")
    elif _MODULE_NAME.match(spec):
        try:
            module, attr = import_module_or_file(spec)
        except CliError as exc:
            if isinstance(exc.__cause__, ModuleNotFoundError):
                raise CliError(f"flow file not found, and no module named {spec!r}",
                               hint="give a .json/.yaml/.py file or an importable module"
                               ) from exc
            raise
    else:
        raise CliError(f"flow file not found: {spec}")
    source = _attribute(module, attr, spec) if attr else module
    bundle = bundle_from_object(source, spec)
    if not bundle.flows and not bundle.triggers and not bundle.forms:
        raise CliError(f"{spec}: defines no `flow`, `flows`, `triggers` or `forms`")
    return bundle


def load_handlers_spec(spec: str) -> list[StepHandler]:
    """``--handlers MODULE[:ATTR]``: the attribute, or the module's ``handlers``."""
    module, attr = import_module_or_file(spec)
    if attr:
        return handlers_from(_attribute(module, attr, spec), spec)
    if not hasattr(module, "handlers"):
        raise CliError(f"{spec}: module {module.__name__} has no `handlers` list",
                       hint="define `handlers = [...]` or name one: --handlers MODULE:ATTR")
    return handlers_from(module.handlers, spec)


def load_app(spec: str) -> Bundle:
    """``--app MODULE[:ATTR]``: an object (or module) with ``flows``/``handlers``/``tables``."""
    module, attr = import_module_or_file(spec)
    source = _attribute(module, attr, spec) if attr else module
    return bundle_from_object(source, spec)


def load_apps(apps: Iterable[str], flows_dirs: Iterable[str]) -> Bundle:
    """What ``--app`` and ``--flows-dir`` (:func:`flowmonkey.cli.options.add_app_options`)
    give, in that order; its triggers checked together (see :func:`bundle_problems`)."""
    bundle = Bundle()
    for spec in apps:
        bundle.extend(load_app(spec))
    for directory in flows_dirs:
        bundle.extend(load_flows_dir(directory))
    problems = bundle_problems(bundle)
    if problems:
        raise CliError("invalid definitions:\n  " + "\n  ".join(problems))
    return bundle


def bundle_problems(bundle: Bundle) -> list[str]:
    """Problems among a bundle's triggers and forms: an id defined twice differently,
    and, when the bundle has flows, a trigger or form naming a flow it lacks (without
    flows, as on Kafka where they come from the flows topic, the engine checks that
    when it registers them)."""
    from flowmonkey.runtime import form_defs, trigger_defs

    flow_ids = {f.id for f in bundle.flows} if bundle.flows else None
    return (trigger_defs.cross_problems(bundle.triggers, flow_ids)
            + form_defs.cross_problems(bundle.forms, flow_ids))


def load_flows_dir(directory: str) -> Bundle:
    path = Path(directory)
    if not path.is_dir():
        raise CliError(f"--flows-dir {directory}: not a directory")
    bundle = Bundle()
    for file in sorted(path.iterdir()):
        if file.suffix.lower() in FLOW_SUFFIXES and file.is_file():
            bundle.extend(bundle_from_document(read_document(file), str(file)))
    return bundle


def all_handlers(user: Iterable[StepHandler], *, allow_private_http: bool) -> list[StepHandler]:
    """The built-in handlers plus the user's; a user handler replaces a built-in type.

    The engine would add the built-ins itself; the CLI lists them to validate flows
    against them first and to give ``http`` the ``--allow-private-http`` choice."""
    from flowmonkey.handlers import with_builtins

    return with_builtins(user, allow_private_http=allow_private_http)


def engine_handlers(bundle: Bundle, *, allow_private_http: bool) -> list[StepHandler]:
    """:func:`all_handlers` for a command that starts an engine on ``bundle``, after
    checking its flows here, so that a problem names the CLI's options."""
    handlers = all_handlers(bundle.handlers, allow_private_http=allow_private_http)
    lines = [line for flow in bundle.flows
             for line in flow_problems(flow, handlers, bundle.tables,
                                       option="--app MODULE[:ATTR]")]
    if lines:
        raise CliError("invalid flow:\n  " + "\n  ".join(lines))
    return handlers


def flow_problems(flow: Flow, handlers: Sequence[StepHandler], tables: Sequence[TableDef],
                  *, option: str = "--handlers MODULE[:ATTR]") -> list[str]:
    """Validation problems of a parsed flow against handlers and tables, one per line
    (with ``sub-flow``, which the engine adds itself, unless ``handlers`` replace it).
    ``option``: the command's option that adds handlers, named by an unknown type's
    message (the engine's own message names Python's ``Engine(handlers=[...])``)."""
    from flowmonkey.handlers.config_check import config_problems

    known = _with_subflow(handlers)
    found = flow.problems([h.metadata.type for h in known], {t.id: t for t in tables},
                          handler_hint=f"pass yours with {option}") \
        + config_problems(flow, known)
    return [f"flow {flow.ref}" + (f", step {step!r}" if step else "") + f", field {fld}: {msg}"
            for step, fld, msg in found]


def _with_subflow(handlers: Sequence[StepHandler]) -> list[StepHandler]:
    """``handlers`` with ``sub-flow``, which the engine adds itself, unless they have one."""
    from flowmonkey.handlers.subflow import SubFlowHandler

    known = list(handlers)
    if not any(h.metadata.type == "sub-flow" for h in known):
        # whether the child flow exists is known only to a running engine
        known.append(SubFlowHandler(lambda flow_id, version: True))
    return known
