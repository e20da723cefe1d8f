"""A register command of an entity that is not an execution (``trigger.register``,
``form.register``): its definition checked before anything is decided, the same way
for every kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from flowmonkey.events import names as n
from flowmonkey.kernel.decision import Decision, Txn

M = TypeVar("M", bound=BaseModel)
Problems = list[tuple[str, str]]


def registered_model(tx: Txn, model_type: type[M], what: str,
                     problems_of: Callable[[M], Problems],
                     describe: Callable[[str, Problems], str]) -> M | Decision:
    """The command's ``definition`` as a ``model_type``, or the rejection that says
    what is wrong with it: the model's errors, a definition sent to another entity's
    id, ``problems_of`` it, a tenant other than the command's."""
    raw = tx.cmd.data["definition"]
    try:
        parsed = model_type.model_validate(raw)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(definition)'}: {e['msg']}"
                          for e in exc.errors())
        fallback = tx.cmd.execution_id.partition(":")[2]
        return tx.reject(n.REJECT_INVALID_COMMAND,
                         f"{what} {raw.get('id', fallback)!r}: {where}"[:1000])
    model: Any = parsed
    if model.entity_id != tx.cmd.execution_id:
        return tx.reject(n.REJECT_INVALID_COMMAND, (
            f"{what} {model.id!r} registered on {tx.cmd.execution_id!r}: a {what}'s "
            f"commands go to {model.entity_id!r}"))
    problems = problems_of(parsed)
    if problems:
        return tx.reject(n.REJECT_INVALID_COMMAND, describe(model.id, problems)[:1000])
    if tx.cmd.tenant_id is not None and model.tenant_id != tx.cmd.tenant_id:
        return tx.reject(n.REJECT_INVALID_COMMAND, (
            f"{what} {model.id!r} belongs to tenant {model.tenant_id!r}, not to the "
            "command's"))
    return parsed


__all__ = ["registered_model"]
