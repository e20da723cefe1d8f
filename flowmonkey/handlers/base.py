"""Handler contracts: function handlers, class handlers, and what they receive (FEATURES C1, C2).

A handler is anything with ``metadata`` (a :class:`HandlerMetadata`) and an async
``execute(params) -> StepResult``. ``@handler`` turns an async function into one;
subclassing :class:`Handler` gives a class handler whose input is a pydantic model.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, cast, runtime_checkable

from pydantic import BaseModel, ValidationError

from flowmonkey.errors import ContextLimitExceeded, InputValidationError
from flowmonkey.kernel import limits as limit_checks
from flowmonkey.kernel.copies import private_copy
from flowmonkey.kernel.paths import MISSING, get_path, set_path
from flowmonkey.model.execution import Execution
from flowmonkey.model.flow import Step
from flowmonkey.model.limits import ContextLimits
from flowmonkey.model.result import StepResult

Category = Literal["control", "data", "external", "ai", "utility"]


@dataclass(frozen=True, slots=True)
class HandlerMetadata:
    """What a handler is, for registries, editors and the API (published as JSON)."""

    type: str
    name: str | None = None
    description: str | None = None
    category: Category = "utility"
    stateful: bool = False
    retryable: bool = True
    config_schema: dict[str, Any] | None = None
    input_schema: dict[str, Any] | None = None
    # a stateful handler's job: its total timeout and heartbeat interval, when the step
    # gives none (None: the defaults, 10 minutes and 30 s; see kernel/jobs.py)
    job_timeout_ms: int | None = None
    heartbeat_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name or self.type,
            "description": self.description,
            "category": self.category,
            "stateful": self.stateful,
            "retryable": self.retryable,
            "configSchema": self.config_schema,
            "inputSchema": self.input_schema,
            "jobTimeoutMs": self.job_timeout_ms,
            "heartbeatMs": self.heartbeat_ms,
        }


class ContextHelpers:
    """Dot-path reads and writes on the context, checked against the context limits.

    Writes do not change the execution directly: they are recorded and travel with
    the step's result, so they are decided and logged like every other change. The
    helpers work on their own deep copy of ``context`` (``private=True``: the caller
    hands over a fresh copy of its own, not to be copied again), so nothing done to
    what ``get`` returns reaches the execution.
    """

    def __init__(self, context: Mapping[str, Any], limits: ContextLimits, *,
                 private: bool = False) -> None:
        self._context: dict[str, Any] = dict(context) if private else private_copy(context)
        self._limits = limits
        self.writes: list[tuple[str, Any]] = []

    def get(self, path: str) -> Any:
        """The value at ``path``; None when absent."""
        value = get_path(self._context, path)
        return None if value is MISSING else value

    def get_safe(self, path: str, default: Any = None) -> Any:
        value = get_path(self._context, path)
        return default if value is MISSING else value

    def has(self, path: str) -> bool:
        return get_path(self._context, path) is not MISSING

    def set(self, path: str, value: Any) -> None:
        """Set ``path`` (creating nested objects); raises ContextLimitExceeded on a limit."""
        try:
            limit_checks.check_value(path, value, self._limits)
            updated = set_path(self._context, path, value)
            limit_checks.check_context(updated, self._limits)
        except limit_checks.LimitViolation as violation:
            raise ContextLimitExceeded(violation.message, code=violation.code) from None
        self._context = updated
        self.writes.append((path, value))

    def merge(self, values: Mapping[str, Any]) -> None:
        """Shallow merge of top-level keys."""
        for key, value in values.items():
            self.set(key, value)

    def snapshot(self) -> Mapping[str, Any]:
        return MappingProxyType(self._context)


class VaultProvider(Protocol):
    """Where ``vault`` inputs come from. Secrets are never logged or stored."""

    async def get_secret(self, name: str) -> str | None: ...


@dataclass(slots=True)
class EnvVaultProvider:
    """Reads secrets from environment variables: ``prefix`` + the name upper-cased,
    with ``-``, ``.`` and ``/`` as ``_`` (``payments/api-key`` is read from
    ``FLOWMONKEY_SECRET_PAYMENTS_API_KEY``)."""

    prefix: str = "FLOWMONKEY_SECRET_"

    def variable(self, name: str) -> str:
        """The environment variable a secret's name is read from."""
        return self.prefix + name.upper().replace("-", "_").replace(".", "_").replace("/", "_")

    async def get_secret(self, name: str) -> str | None:
        import os

        return os.environ.get(self.variable(name))

    def __repr__(self) -> str:
        return f"EnvVaultProvider(prefix={self.prefix!r})"


class DictVaultProvider:
    """Secrets from a mapping held in memory (for tests and embedded use). Its
    ``repr`` names the secrets, never their values."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = dict(secrets)

    async def get_secret(self, name: str) -> str | None:
        return self._secrets.get(name)

    def __repr__(self) -> str:
        return f"DictVaultProvider({sorted(self._secrets)!r})"


@runtime_checkable
class JobControl(Protocol):
    """``params.job`` of a stateful handler (the worker's side: :mod:`flowmonkey.jobs`).

    ``checkpoint`` waits for the log to take the data, and raises
    :class:`~flowmonkey.errors.JobSupersededError` once another worker holds the job
    (:class:`~flowmonkey.errors.JobCancelledError` once it was cancelled);
    ``progress`` never waits (reports are coalesced, at most one a second, the last
    one wins); ``assert_active`` raises as ``checkpoint`` would, from what the worker
    last heard about the job (at most one heartbeat ago)."""

    @property
    def id(self) -> str: ...

    @property
    def instance_id(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def checkpoint_data(self) -> Any: ...

    async def checkpoint(self, data: Any) -> None: ...

    async def progress(self, percent: float, message: str | None = None) -> None: ...

    async def assert_active(self) -> None: ...


@dataclass(slots=True)
class HandlerParams:
    """Everything a handler receives for one step attempt (``job``: a stateful
    handler's job, run by a worker; None for every other handler)."""

    input: Any
    config: Mapping[str, Any]
    context: Mapping[str, Any]
    helpers: ContextHelpers
    execution: Execution
    step: Step
    attempt_id: str
    attempt: int = 1
    abort: asyncio.Event = field(default_factory=asyncio.Event)
    vault: VaultProvider | None = None
    job: JobControl | None = None


@runtime_checkable
class StepHandler(Protocol):
    @property
    def metadata(self) -> HandlerMetadata: ...

    async def execute(self, params: HandlerParams) -> StepResult: ...


HandlerFn = Callable[[HandlerParams], Awaitable[StepResult]]


class FunctionHandler:
    """A handler made from an async function by :func:`handler`."""

    def __init__(self, fn: HandlerFn, metadata: HandlerMetadata) -> None:
        self._fn = fn
        self.metadata = metadata
        self.__doc__ = fn.__doc__

    async def execute(self, params: HandlerParams) -> StepResult:
        return await self._fn(params)

    async def __call__(self, params: HandlerParams) -> StepResult:
        return await self._fn(params)

    def __repr__(self) -> str:
        return f"<handler {self.metadata.type!r}>"


def handler(
    type: str,
    *,
    name: str | None = None,
    description: str | None = None,
    category: Category = "utility",
    stateful: bool = False,
    retryable: bool = True,
    config_schema: dict[str, Any] | None = None,
    job_timeout_ms: int | None = None,
    heartbeat_ms: int | None = None,
) -> Callable[[HandlerFn], FunctionHandler]:
    """Decorate ``async def fn(params) -> StepResult`` into a registered-able handler.

    ``stateful=True``: its steps run as jobs, claimed by workers; ``job_timeout_ms``
    and ``heartbeat_ms`` are the job's defaults where the step sets none."""

    def wrap(fn: HandlerFn) -> FunctionHandler:
        if not asyncio.iscoroutinefunction(fn):
            raise TypeError(f"handler {type!r} must be an async function")
        return FunctionHandler(fn, HandlerMetadata(
            type=type, name=name, description=description or (fn.__doc__ or "").strip() or None,
            category=category, stateful=stateful, retryable=retryable,
            config_schema=config_schema, job_timeout_ms=job_timeout_ms,
            heartbeat_ms=heartbeat_ms,
        ))

    return wrap


InputT = TypeVar("InputT", bound=BaseModel)


class Handler(Generic[InputT]):
    """Base for class handlers. Declare ``Input`` (a pydantic model) and ``run``.

    The model is built from the step's config overlaid with its resolved input (when
    the input is a mapping); fields marked ``vault_field(...)`` are fetched from the
    vault provider and never logged. A model that does not validate fails the step
    with ``INPUT_ERROR`` naming each field.
    """

    type: ClassVar[str]
    name: ClassVar[str | None] = None
    description: ClassVar[str | None] = None
    category: ClassVar[Category] = "utility"
    stateful: ClassVar[bool] = False
    retryable: ClassVar[bool] = True
    job_timeout_ms: ClassVar[int | None] = None
    heartbeat_ms: ClassVar[int | None] = None
    Input: ClassVar[builtins.type[BaseModel]]
    vault_fields: ClassVar[Mapping[str, str]] = {}
    """Input field name -> secret name in the vault."""

    @property
    def metadata(self) -> HandlerMetadata:
        return HandlerMetadata(
            type=self.type, name=self.name, description=self.description or self.__doc__,
            category=self.category, stateful=self.stateful, retryable=self.retryable,
            input_schema=self.Input.model_json_schema(), job_timeout_ms=self.job_timeout_ms,
            heartbeat_ms=self.heartbeat_ms,
        )

    async def build_input(self, params: HandlerParams) -> InputT:
        raw: dict[str, Any] = dict(params.config)
        if isinstance(params.input, Mapping):
            raw.update(params.input)
        for field_name, secret in self.vault_fields.items():
            if params.vault is None:
                raise InputValidationError(
                    f"handler {self.type!r} needs secret {secret!r} for field {field_name!r} "
                    "but the engine has no vault provider configured")
            value = await params.vault.get_secret(secret)
            if value is None:
                raise InputValidationError(
                    f"handler {self.type!r}: secret {secret!r} for field {field_name!r} "
                    "was not found in the vault")
            raw[field_name] = value
        try:
            return cast(InputT, self.Input.model_validate(raw))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(input)'}: {e['msg']}"
                for e in exc.errors(include_input=False)
            )
            raise InputValidationError(
                f"handler {self.type!r}, step {params.step.id!r}: invalid input: {problems}"
            ) from None

    async def execute(self, params: HandlerParams) -> StepResult:
        data = await self.build_input(params)
        return await self.run(data, params)

    async def run(self, data: InputT, params: HandlerParams) -> StepResult:
        raise NotImplementedError
