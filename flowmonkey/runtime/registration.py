"""What an engine is given: its handlers (the built-ins and ``sub-flow`` besides the
caller's), its flows (validated against the handlers and tables, with a warning for
flows that can call themselves), and the flow version a ``create`` pins."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flowmonkey.errors import FlowNotFoundError, FlowValidationError
from flowmonkey.handlers import with_builtins
from flowmonkey.handlers.base import StepHandler
from flowmonkey.handlers.config_check import config_problems
from flowmonkey.handlers.registry import EngineEnv, FlowRegistry, HandlerRegistry
from flowmonkey.handlers.subflow import SubFlowHandler
from flowmonkey.model.flow import ENGINE_HANDLER_HINT, Flow, with_more_problems
from flowmonkey.model.flow_calls import self_call_warning
from flowmonkey.model.tables import TableDef

log = logging.getLogger("flowmonkey.engine")


def register_handlers(registry: HandlerRegistry, handlers: Iterable[StepHandler],
                      env: EngineEnv, *, builtin_handlers: bool) -> None:
    """``handlers``, the built-ins they do not replace (unless ``builtin_handlers`` is
    false) and a ``sub-flow`` handler that knows ``env``'s flows."""
    for h in with_builtins(handlers) if builtin_handlers else handlers:
        registry.register(h)
    if "sub-flow" not in registry:
        registry.register(SubFlowHandler(
            lambda flow_id, version: env.flow(flow_id, version) is not None))


class FlowIntake:
    """Validates and registers flows into ``flows``; warns once per flow that can
    call itself within ``max_subflow_depth``."""

    def __init__(self, flows: FlowRegistry, handlers: HandlerRegistry,
                 tables: dict[str, TableDef], *, builtin_handlers: bool,
                 max_subflow_depth: int) -> None:
        self.flows = flows
        self.handlers = handlers
        self.tables = tables
        self.max_subflow_depth = max_subflow_depth
        self.hint = ENGINE_HANDLER_HINT + ("" if builtin_handlers else
                                           "; the built-in handlers are left out "
                                           "(Engine(builtin_handlers=False))")
        self._self_calls_warned: set[str] = set()

    def register(self, flow: Flow | Mapping[str, Any]) -> Flow:
        try:
            parsed = flow if isinstance(flow, Flow) else Flow.parse(flow)
        except FlowValidationError as exc:  # add what only handlers and tables can tell
            salvaged = exc.salvaged
            more = config_problems(salvaged, self.handlers.all()) \
                if isinstance(salvaged, Flow) else []
            raise with_more_problems(exc, self.handlers.types(), self.tables, more,
                                     handler_hint=self.hint) from None
        registered = self.flows.register(
            parsed, handler_types=self.handlers.types(), tables=self.tables,
            more_problems=config_problems(parsed, self.handlers.all()),
            handler_hint=self.hint)
        self._warn_self_calls()
        return registered

    def _warn_self_calls(self) -> None:
        """Warn (once per flow) about flows that can now call themselves."""
        flows = self.flows.all()
        for flow_id in sorted({f.id for f in flows} - self._self_calls_warned):
            warning = self_call_warning(flow_id, flows, self.max_subflow_depth)
            if warning is not None:
                self._self_calls_warned.add(flow_id)
                log.warning("%s", warning)


def version_to_start(flows: FlowRegistry, env: EngineEnv, flow_id: str,
                     flow_version: str | None, *, allow_unpublished: bool) -> str | None:
    """The version a start command names: ``flow_version``, or the draft/archived one
    when none is published or ``allow_unpublished``. A flow not registered at all
    raises :class:`FlowNotFoundError` naming the registered ones."""
    if env.flow(flow_id, flow_version) is None and \
            flows.get(flow_id, flow_version, include_unpublished=True) is None:
        what = f"flow {flow_id!r}" + (f" version {flow_version!r}" if flow_version else "")
        known = ", ".join(sorted({f.id for f in flows.all()})) or "none"
        raise FlowNotFoundError(f"{what} is not registered (registered flows: {known})")
    if flow_version is None and (allow_unpublished or env.flow(flow_id) is None):
        # The kernel resolves a missing version among published flows only: pin the
        # draft/archived one, so allow_unpublished works and a refusal says why.
        unpublished = flows.get(flow_id, include_unpublished=True)
        if unpublished is not None:
            return unpublished.version
    return flow_version
