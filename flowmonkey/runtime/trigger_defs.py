"""Trigger definitions as users write them: parsed and validated with every problem
at once, each naming the trigger and the field (``trigger 'nightly': schedule.cron:
...``), like flows.

What the model (:class:`~flowmonkey.model.trigger.Trigger`) cannot tell alone is
checked here too: a cron expression that does not parse, an unknown IANA timezone, a
trigger id given twice, a flow that is not known (when the known flows are given),
and an event trigger on its own flow (it would start itself on its own events, with
nothing but the sub-flow depth to stop it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from flowmonkey.errors import FlowMonkeyError
from flowmonkey.kernel import cron
from flowmonkey.kernel.trigger_checks import trigger_problems as kernel_problems
from flowmonkey.model.trigger import Trigger
from flowmonkey.runtime.definitions import parse_definitions, twice_problems, unique

#: the most triggers one definition source may hold (a file, a module's list)
MAX_TRIGGERS = 10_000


class TriggerValidationError(FlowMonkeyError):
    """Trigger definitions are invalid; ``problems`` names each trigger and field."""

    code = "TRIGGER_INVALID"

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}invalid trigger:\n  " + "\n  ".join(problems),
                         problems=list(problems))
        self.problems = list(problems)


def trigger_problems(trigger: Trigger) -> list[str]:
    """What a parsed trigger's model could not check itself (the kernel's checks, which
    ``trigger.register`` applies too)."""
    return [f"trigger {trigger.id!r}: {field}: {problem}"
            for field, problem in kernel_problems(trigger)]


def parse_triggers(raw: Iterable[Any]) -> tuple[list[Trigger], list[str]]:
    """The triggers of ``raw`` (definitions as written, camelCase, or ``Trigger``s)
    that are valid, and the problems of the others."""
    return parse_definitions(raw, Trigger, "trigger", "id, kind and flowId",
                             kernel_problems, MAX_TRIGGERS)


def cross_problems(triggers: Sequence[Trigger],
                   flow_ids: Collection[str] | None = None) -> list[str]:
    """Problems among triggers: an id given twice (with different definitions), and,
    with ``flow_ids``, a flow or an event's flow that is not among them."""
    found = twice_problems(triggers, "trigger")
    if flow_ids is not None:
        known = ", ".join(sorted(flow_ids)) or "none"
        for trigger in unique(triggers):
            if trigger.flow_id not in flow_ids:
                found.append(f"trigger {trigger.id!r}: flowId: flow {trigger.flow_id!r} is "
                             f"not registered (registered flows: {known})")
            if trigger.event is not None and trigger.event.flow_id not in flow_ids:
                found.append(f"trigger {trigger.id!r}: event.flowId: flow "
                             f"{trigger.event.flow_id!r} is not registered (registered "
                             f"flows: {known})")
    return found


def validated_triggers(raw: Iterable[Any], flow_ids: Collection[str] | None = None, *,
                       source: str | None = None) -> list[Trigger]:
    """Every trigger of ``raw``, or :class:`TriggerValidationError` with every problem
    (with ``flow_ids``, an unknown flow is one)."""
    triggers, problems = parse_triggers(raw)
    problems += cross_problems(triggers, flow_ids)
    if problems:
        raise TriggerValidationError(problems, source)
    return unique(triggers)


def next_fire_times(trigger: Trigger, after_ms: int, count: int) -> list[int]:
    """The next ``count`` ticks of a schedule after ``after_ms`` (epoch ms, UTC); []
    for a trigger of another kind."""
    if trigger.schedule is None:
        return []
    times: list[int] = []
    at = after_ms
    for _ in range(count):
        at = cron.next_after(trigger.schedule.cron, trigger.schedule.timezone, at)
        times.append(at)
    return times


__all__ = ["MAX_TRIGGERS", "TriggerValidationError", "cross_problems", "next_fire_times",
           "parse_triggers", "trigger_problems", "unique", "validated_triggers"]
