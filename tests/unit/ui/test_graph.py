"""The flow graph: edges from transitions and routing configs, layout, marks from an
execution's history, escaping and bounds of the SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from flowmonkey.api.ui.graph import (
    MAX_DRAWN_STEPS,
    MAX_TITLE_CHARS,
    StepMarks,
    flow_edges,
    flow_svg,
    marks_from_history,
)
from flowmonkey.api.ui.graph_layout import NODE_HEIGHT, layered
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.model.flow import Flow

SVG = "{http://www.w3.org/2000/svg}"


def order_flow(visual: dict[str, Any] | None = None) -> Flow:
    data: dict[str, Any] = {
        "id": "order", "version": "1.0.0", "initialStepId": "validate",
        "steps": {
            "validate": {"type": "transform", "transitions": {"onSuccess": "route",
                                                              "onFailure": "reject"}},
            "route": {"type": "conditional", "config": {
                "conditions": [{"path": "amount", "op": "gt", "value": 100,
                                "target": "approve"}],
                "default": "charge"}},
            "approve": {"type": "delay", "transitions": {"onSuccess": "charge",
                                                         "onResume": "charge"}},
            "charge": {"type": "http", "retry": {"maxAttempts": 2},
                       "transitions": {"onSuccess": "done", "onFailure": "validate"}},
            "reject": {"type": "transform"},
            "done": {"type": "transform"},
        },
    }
    if visual is not None:
        data["visual"] = visual
    return Flow.parse(data)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def nodes(root: ET.Element) -> dict[str, ET.Element]:
    return {g.attrib["data-step"]: g for g in root.iter(f"{SVG}g") if "data-step" in g.attrib}


def edges(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {(g.attrib["data-from"], g.attrib["data-to"]): g
            for g in root.iter(f"{SVG}g") if "data-from" in g.attrib}


def classes(element: ET.Element) -> set[str]:
    return set(element.attrib["class"].split())


def event(seq: int, type_: str, /, **data: Any) -> Event:
    return Event(type=type_, execution_id="e1", seq=seq, event_id=f"ev{seq}",
                 timestamp_ms=seq, data=data)


def test_edges_come_from_transitions_and_routing_targets() -> None:
    found = {(e.source, e.target): e for e in flow_edges(order_flow())}
    assert set(found) == {
        ("validate", "route"), ("validate", "reject"), ("route", "approve"),
        ("route", "charge"), ("approve", "charge"), ("charge", "done"),
        ("charge", "validate"),
    }
    assert found[("validate", "reject")].kinds == ["failure"]
    assert found[("route", "approve")].labels == ["amount gt 100"]
    assert found[("route", "charge")].labels == ["default"]
    # onResume to the same step as onSuccess is one arrow, not two
    assert found[("approve", "charge")].kinds == ["success"]


def test_switch_cases_and_unknown_targets() -> None:
    flow = Flow.parse({"id": "s", "initialStepId": "pick", "steps": {
        "pick": {"type": "switch", "config": {"path": "kind", "cases": {
            "a": "one", "b": "one", "c": "nowhere"}, "default": None}},
        "one": {"type": "t"}}})
    found = flow_edges(flow)
    assert [(e.source, e.target, e.labels) for e in found] == [("pick", "one", ["= a", "= b"])]


def test_every_step_and_edge_is_drawn_as_valid_svg() -> None:
    root = parse(flow_svg(order_flow()))
    assert root.tag == f"{SVG}svg"
    assert set(nodes(root)) == set(order_flow().steps)
    assert len(edges(root)) == 7
    assert "initial" in classes(nodes(root)["validate"])
    assert root.attrib["data-flow"] == "order"
    # without marks, nothing is marked
    for g in nodes(root).values():
        assert classes(g) & {"visited", "current", "failed", "retried"} == set()


def test_layers_go_down_along_forward_edges_and_cycles_are_back_edges() -> None:
    flow = order_flow()
    pairs = [(e.source, e.target) for e in flow_edges(flow)]
    layout = layered(list(flow.steps), pairs)
    y = {k: b.y for k, b in layout.boxes.items()}
    assert y["validate"] < y["route"] < y["approve"] < y["charge"] < y["done"]
    assert layout.back == {("charge", "validate")}
    # no two boxes overlap
    boxes = list(layout.boxes.values())
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
    # the long edge route -> charge bends through a waypoint in approve's layer
    route = layout.routes[("route", "charge")]
    assert len(route) == 3
    assert route[1][1] == layout.boxes["approve"].y + NODE_HEIGHT / 2


def test_visual_positions_are_used_when_every_step_has_one() -> None:
    nodes_at: dict[str, dict[str, Any]] = {step: {"x": 300 + i * 10, "y": 200 + i * 100}
                for i, step in enumerate(order_flow().steps)}
    nodes_at["route"] = {"position": {"x": 900, "y": 300}, "width": 120, "height": 60}
    root = parse(flow_svg(order_flow({"nodes": nodes_at})))
    rect = nodes(root)["route"].find(f"{SVG}rect")
    assert rect is not None
    # moved so the leftmost/topmost node sits at the margin, sizes kept
    assert (rect.attrib["x"], rect.attrib["y"]) == (str(900 - 300 + 24), str(300 - 200 + 24))
    assert (rect.attrib["width"], rect.attrib["height"]) == ("120", "60")


def test_incomplete_or_bad_visual_positions_fall_back_to_the_layout() -> None:
    steps = list(order_flow().steps)
    partial = {"nodes": {s: {"x": 5, "y": 5} for s in steps[1:]}}
    bad = {"nodes": {s: {"x": float("inf") if i == 0 else 1, "y": 1}
                     for i, s in enumerate(steps)}}
    auto = flow_svg(order_flow())
    assert flow_svg(order_flow(partial)) == auto
    assert flow_svg(order_flow(bad)) == auto


def test_marks_from_history_of_a_retry_then_a_failure_path() -> None:
    flow = order_flow()
    history = [
        event(1, n.EXECUTION_CREATED, flow_id="order", flow_version="1.0.0", context={},
              options={}),
        event(2, n.STEP_STARTED, step_id="validate", step_type="transform", attempt=1,
              attempt_id="a"),
        event(3, n.STEP_COMPLETED, step_id="validate", step_type="transform", attempt=1,
              duration_ms=1, outcome="success"),
        event(4, n.TRANSITION, from_step_id="validate", to_step_id="route", outcome="success"),
        event(5, n.STEP_STARTED, step_id="route", step_type="conditional", attempt=1,
              attempt_id="b"),
        event(6, n.STEP_COMPLETED, step_id="route", step_type="conditional", attempt=1,
              duration_ms=1, outcome="success"),
        event(7, n.TRANSITION, from_step_id="route", to_step_id="charge", outcome="success"),
        event(8, n.STEP_STARTED, step_id="charge", step_type="http", attempt=1,
              attempt_id="c"),
        event(9, n.STEP_COMPLETED, step_id="charge", step_type="http", attempt=1,
              duration_ms=1, outcome="failure", error={"code": "X", "message": "m"}),
        event(10, n.STEP_RETRY, step_id="charge", attempt=1, max_attempts=2, backoff_ms=0,
              error={"code": "X", "message": "m"}),
        event(11, n.STEP_STARTED, step_id="charge", step_type="http", attempt=2,
              attempt_id="d"),
        event(12, n.STEP_COMPLETED, step_id="charge", step_type="http", attempt=2,
              duration_ms=1, outcome="failure", error={"code": "X", "message": "m"}),
        event(13, n.EXECUTION_FAILED, code="X", message="m", step_id="charge"),
    ]
    marks = marks_from_history(flow, history)
    assert marks == StepMarks(
        visited=frozenset({"validate", "route", "charge"}), current=None,
        failed=frozenset({"charge"}), retried=frozenset({"charge"}),
        taken=frozenset({("validate", "route"), ("route", "charge")}))
    root = parse(flow_svg(flow, marks))
    drawn = nodes(root)
    assert {"visited", "failed", "retried"} <= classes(drawn["charge"])
    assert "visited" in classes(drawn["validate"])
    assert "failed" not in classes(drawn["validate"])
    assert "visited" not in classes(drawn["approve"])
    lines = edges(root)
    assert "taken" in classes(lines[("route", "charge")])
    assert "taken" not in classes(lines[("route", "approve")])


def test_a_retry_that_succeeds_is_retried_not_failed_and_waiting_is_current() -> None:
    flow = order_flow()
    history = [
        event(1, n.STEP_STARTED, step_id="approve", step_type="delay", attempt=1,
              attempt_id="a"),
        event(2, n.STEP_COMPLETED, step_id="approve", step_type="delay", attempt=1,
              duration_ms=1, outcome="failure"),
        event(3, n.STEP_STARTED, step_id="approve", step_type="delay", attempt=2,
              attempt_id="b"),
        event(4, n.STEP_COMPLETED, step_id="approve", step_type="delay", attempt=2,
              duration_ms=1, outcome="wait"),
        event(5, n.EXECUTION_WAITING, step_id="approve", kind="signal", reason="ok?"),
        event(6, n.STEP_STARTED, step_id="ghost", step_type="x", attempt=1, attempt_id="c"),
    ]
    marks = marks_from_history(flow, history)
    assert marks.current == "approve"
    assert marks.retried == {"approve"}
    assert marks.failed == set()
    assert marks.visited == {"approve"}  # a step the flow does not have is ignored
    drawn = nodes(parse(flow_svg(flow, marks)))
    assert "current" in classes(drawn["approve"])


def test_text_from_the_flow_is_escaped() -> None:
    nasty = '<script>alert("x")</script>&'
    flow = Flow.parse({"id": 'f"<x>', "initialStepId": nasty, "steps": {
        nasty: {"type": "t<b>", "name": nasty, "description": "</title><script>",
                "transitions": {"onSuccess": "b\x01"}},
        "b\x01": {"type": "switch", "config": {"path": "p", "cases": {
            "<img src=x onerror=alert(1)>": nasty}}}}})
    svg = flow_svg(flow, StepMarks(current=nasty))
    assert "<script" not in svg
    assert "<img" not in svg
    assert "<b>" not in svg
    root = parse(svg)  # and no character XML forbids
    assert set(nodes(root)) == {nasty, "b\ufffd"}


def test_big_flows_are_bounded() -> None:
    count = MAX_DRAWN_STEPS + 40
    steps = {f"s{i}": {"type": "t", "name": "n" * 500,
                       "transitions": {"onSuccess": f"s{i + 1}" if i + 1 < count else None}}
             for i in range(count)}
    flow = Flow.parse({"id": "big", "initialStepId": "s0", "steps": steps})
    svg = flow_svg(flow)
    root = parse(svg)
    assert len(nodes(root)) == MAX_DRAWN_STEPS
    assert "s0" in nodes(root)
    assert f"s{MAX_DRAWN_STEPS}" not in nodes(root)
    assert "40 more steps not drawn" in svg
    # long names are shortened: in the box, and in its tooltip
    texts = [t.text or "" for g in nodes(root).values() for t in g.iter(f"{SVG}text")]
    assert max(len(t) for t in texts) < 30
    assert "n" * MAX_TITLE_CHARS not in svg


def test_wide_switch_and_self_loop() -> None:
    cases = {str(i): f"t{i}" for i in range(60)}
    steps: dict[str, Any] = {"pick": {"type": "switch", "config": {"path": "p", "cases": cases},
                                      "transitions": {"onFailure": "pick"}}}
    steps.update({f"t{i}": {"type": "t"} for i in range(60)})
    flow = Flow.parse({"id": "wide", "initialStepId": "pick", "steps": steps})
    root = parse(flow_svg(flow))
    assert len(nodes(root)) == 61
    assert ("pick", "pick") in edges(root)
