"""Small builders for flow definitions in the original's camelCase JSON shape.

Behaviour tests describe flows as data, the way users write them; these helpers
only remove the boilerplate (ids repeated as keys, empty configs, ``full`` inputs).
"""

from __future__ import annotations

from typing import Any

END: None = None
"""A transition target that ends the flow."""


def step(
    id: str,
    type: str,
    *,
    to: str | None = END,
    on_failure: str | None = None,
    on_resume: str | None = None,
    input: dict[str, Any] | None = None,
    output_key: str | None = None,
    config: dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One step; ``to`` is its ``onSuccess`` target (the end of the flow by default)."""
    transitions: dict[str, Any] = {"onSuccess": to}
    if on_failure is not None:
        transitions["onFailure"] = on_failure
    if on_resume is not None:
        transitions["onResume"] = on_resume
    raw: dict[str, Any] = {
        "id": id,
        "type": type,
        "config": config or {},
        "input": input or {"type": "full"},
        "transitions": transitions,
    }
    if output_key is not None:
        raw["outputKey"] = output_key
    if retry is not None:
        raw["retry"] = retry
    return raw


def flow(
    id: str,
    *steps: dict[str, Any],
    version: str = "1.0.0",
    pipes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A flow whose initial step is the first one given."""
    raw: dict[str, Any] = {
        "id": id,
        "version": version,
        "initialStepId": steps[0]["id"],
        "steps": {s["id"]: s for s in steps},
    }
    if pipes is not None:
        raw["pipes"] = pipes
    return raw


def key(name: str) -> dict[str, Any]:
    return {"type": "key", "key": name}


def types_of(events: list[Any], *, prefix: str = "") -> list[str]:
    """Event types, optionally only those starting with ``prefix``."""
    return [e.type for e in events if e.type.startswith(prefix)]
