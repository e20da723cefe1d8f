"""Which flows can call themselves through ``sub-flow`` steps, directly or via others.

Such a flow is not refused: recursion can be meant (a tree walk that stops on its
input). But nothing in the flow itself bounds it, so each call nests one sub-flow
level until the engine's ``max_subflow_depth`` stops it with
``SUBFLOW_DEPTH_EXCEEDED``; registration and ``flowmonkey validate`` warn about it.
"""

from __future__ import annotations

from collections.abc import Iterable

from flowmonkey.model.flow import Flow

SUB_FLOW = "sub-flow"


def sub_flow_calls(flow: Flow) -> set[str]:
    """The flow ids ``flow``'s sub-flow steps start."""
    return {step.config["flowId"] for step in flow.steps.values()
            if step.type == SUB_FLOW and isinstance(step.config.get("flowId"), str)}


def call_cycle(flow_id: str, flows: Iterable[Flow]) -> list[str] | None:
    """A chain of flow ids from ``flow_id`` back to itself through sub-flow steps of any
    registered version (``[a, b, a]``), or None when it cannot call itself."""
    calls: dict[str, set[str]] = {}
    for flow in flows:
        calls.setdefault(flow.id, set()).update(sub_flow_calls(flow))
    # breadth first: the shortest cycle is the clearest one to report
    paths: dict[str, list[str]] = {flow_id: [flow_id]}
    frontier = [flow_id]
    while frontier:
        following: list[str] = []
        for current in frontier:
            for callee in sorted(calls.get(current, ())):
                if callee == flow_id:
                    return [*paths[current], flow_id]
                if callee not in paths:
                    paths[callee] = [*paths[current], callee]
                    following.append(callee)
        frontier = following
    return None


def self_call_warning(flow_id: str, flows: Iterable[Flow], max_depth: int) -> str | None:
    """The warning for a flow that can call itself, or None."""
    cycle = call_cycle(flow_id, flows)
    if cycle is None:
        return None
    how = "itself directly" if len(cycle) == 2 else "itself via " + " → ".join(cycle[1:-1])
    return (f"flow {flow_id!r} can call {how} through sub-flow steps ("
            + " → ".join(cycle) + "); each call nests one sub-flow level, and the engine "
            f"stops it at {max_depth} levels (max_subflow_depth) with "
            "SUBFLOW_DEPTH_EXCEEDED: make sure its input ends the recursion sooner")


__all__ = ["call_cycle", "self_call_warning", "sub_flow_calls"]
