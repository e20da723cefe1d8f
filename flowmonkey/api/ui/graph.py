"""A flow's graph as server-side SVG, with an execution's path marked on it.

:func:`flow_svg` draws a :class:`~flowmonkey.model.flow.Flow` as one ``<svg>``
element: a box per step, an arrow per transition (``onSuccess``, ``onFailure``,
``onResume``) and per target a ``conditional`` or ``switch`` step names in its config.
Nodes sit where the flow's ``visual.nodes`` put them when every drawn step has a
position there, else where :func:`~flowmonkey.api.ui.graph_layout.layered` puts them.
:func:`marks_from_history` reads an execution's events into :class:`StepMarks` (path
taken, current step, failed and retried steps), which the drawing shows as classes
(``step visited current failed retried``, ``edge taken``) and ``data-step`` /
``data-from`` / ``data-to`` attributes, so pages can style them and tests can find
them. Colours are presentation attributes, so the SVG reads right without any CSS.

Pure: no I/O. Every text from the flow is escaped (the output is safe to insert into
a page unescaped) and shortened; at most :data:`MAX_DRAWN_STEPS` steps are drawn
(those nearest the initial step), and a line under the graph says how many were left.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from flowmonkey.api.ui.graph_layout import (
    NODE_HEIGHT,
    NODE_WIDTH,
    Box,
    Layout,
    Point,
    layered,
    positioned,
)
from flowmonkey.events import names as n
from flowmonkey.events.envelope import Event
from flowmonkey.model.flow import Flow, Step

MAX_DRAWN_STEPS = 150
"""Steps drawn at most; a bigger flow shows the ones nearest its initial step."""
MAX_LABELS_PER_EDGE = 3
MAX_LABEL_CHARS = 32
MAX_TITLE_CHARS = 200
MAX_VISUAL_COORD = 100_000.0  # editor positions beyond this are not trusted
VISUAL_SIZE_RANGE = (20.0, 1000.0)

_FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"
# XML forbids these characters, and UTF-8 cannot encode lone surrogates
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

# fill, stroke, stroke-width of a node by its strongest mark
_NODE_STYLE = {
    "failed": ("#fdecea", "#c62828", "2"),
    "current": ("#e3effd", "#1565c0", "3"),
    "visited": ("#e8f5e9", "#2e7d32", "1.5"),
    "": ("#ffffff", "#8a96a3", "1.2"),
}
_EDGE_STYLE = {  # stroke, dash
    "failure": ("#c62828", "5 4"),
    "resume": ("#6a5acd", "2 3"),
    "route": ("#66727f", ""),
    "success": ("#66727f", ""),
}
_TAKEN_STROKE = "#2e7d32"


@dataclass(frozen=True, slots=True)
class StepMarks:
    """What one execution did on its flow's graph."""

    visited: frozenset[str] = frozenset()  # steps this execution ran (path taken)
    current: str | None = None  # step it is on / waiting at
    failed: frozenset[str] = frozenset()  # steps with a failed attempt at the end
    retried: frozenset[str] = frozenset()  # steps with more than one attempt
    taken: frozenset[tuple[str, str]] = frozenset()  # transitions followed (from, to)


@dataclass(slots=True)
class FlowEdge:
    """All the ways one step leads to another, merged into one arrow."""

    source: str
    target: str
    kinds: list[str] = field(default_factory=list)  # success, failure, resume, route
    labels: list[str] = field(default_factory=list)

    def add(self, kind: str, label: str | None) -> None:
        if kind not in self.kinds:
            self.kinds.append(kind)
        if label and label not in self.labels:
            self.labels.append(label)


def marks_from_history(flow: Flow, events: Sequence[Event]) -> StepMarks:
    """The marks of an execution of ``flow`` from its events (in ``seq`` order, as
    history gives them); steps not in ``flow`` are ignored."""
    steps = flow.steps
    visited: set[str] = set()
    retried: set[str] = set()
    failed_last: dict[str, bool] = {}
    taken: set[tuple[str, str]] = set()
    current: str | None = None
    for event in events:
        kind, data = event.type, event.data
        raw = data.get("step_id")
        step = raw if isinstance(raw, str) and raw in steps else ""
        known = bool(step)
        if kind == n.STEP_STARTED and known:
            visited.add(step)
            current = step
            attempt = data.get("attempt")
            if isinstance(attempt, int) and attempt > 1:
                retried.add(step)
        elif kind == n.STEP_RETRY and known:
            retried.add(step)
        elif kind == n.STEP_COMPLETED and known:
            failed_last[step] = data.get("outcome") == "failure"
        elif kind == n.STEP_TIMEOUT and known:
            failed_last[step] = True
        elif kind == n.TRANSITION:
            a, b = data.get("from_step_id"), data.get("to_step_id")
            if isinstance(a, str) and isinstance(b, str) and a in steps and b in steps:
                taken.add((a, b))
                current = b
        elif kind in (n.EXECUTION_WAITING, n.EXECUTION_RESUMED) and known:
            current = step
        elif kind == n.EXECUTION_FAILED:
            if known:
                failed_last[step] = True
            current = None
        elif kind in (n.EXECUTION_COMPLETED, n.EXECUTION_CANCELLED):
            current = None
    return StepMarks(
        visited=frozenset(visited), current=current,
        failed=frozenset(s for s, bad in failed_last.items() if bad),
        retried=frozenset(retried), taken=frozenset(taken),
    )


def flow_edges(flow: Flow) -> list[FlowEdge]:
    """Every arrow of the graph: transitions, then routing targets, one per pair."""
    found: dict[tuple[str, str], FlowEdge] = {}

    def add(source: str, target: Any, kind: str, label: str | None) -> None:
        if isinstance(target, str) and target in flow.steps:
            edge = found.setdefault((source, target), FlowEdge(source, target))
            edge.add(kind, label)

    for step in flow.steps.values():
        t = step.transitions
        add(step.id, t.on_success, "success", None)
        add(step.id, t.on_failure, "failure", "failure")
        if "on_resume" in t.model_fields_set and t.on_resume != t.on_success:
            add(step.id, t.on_resume, "resume", "resume")
        for target, label in _routing_targets(step):
            add(step.id, target, "route", label)
    return list(found.values())


def _routing_targets(step: Step) -> Iterable[tuple[Any, str]]:
    """(target, label) of each branch a routing step's config names."""
    config = step.config
    if step.type == "conditional":
        conditions = config.get("conditions")
        for condition in conditions if isinstance(conditions, list) else ():
            if isinstance(condition, Mapping) and "target" in condition:
                label = f"{condition.get('path')} {condition.get('op')}"
                if "value" in condition:
                    label += f" {_short_json(condition['value'])}"
                yield condition["target"], label
    elif step.type == "switch":
        cases = config.get("cases")
        for value, target in cases.items() if isinstance(cases, Mapping) else ():
            yield target, f"= {value}"
    if step.type in ("conditional", "switch") and "default" in config:
        yield config["default"], "default"


def _short_json(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int | float):
        return str(value)
    return "…"


def flow_svg(flow: Flow, marks: StepMarks | None = None) -> str:
    """The whole ``<svg>`` of ``flow``, with ``marks`` (an execution's) shown."""
    marks = marks or StepMarks()
    drawn = _drawn_steps(flow)
    keep = set(drawn)
    edges = [e for e in flow_edges(flow) if e.source in keep and e.target in keep]
    pairs = [(e.source, e.target) for e in edges]
    boxes = _visual_boxes(flow, drawn)
    layout = positioned(boxes, pairs) if boxes is not None else layered(drawn, pairs)
    left_out = len(flow.steps) - len(drawn)
    height = layout.height + (22.0 if left_out else 0.0)
    width = max(layout.width, 320.0 if left_out else 0.0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flow-graph" '
        f'width="{_n(width)}" height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}" '
        f'role="img" aria-label="{_attr("flow " + flow.ref)}" data-flow="{_attr(flow.id)}" '
        f'data-version="{_attr(flow.version)}" font-family="{_FONT}">',
        "<defs>", _marker("fm-arrow", "#66727f"), _marker("fm-arrow-fail", "#c62828"),
        _marker("fm-arrow-resume", "#6a5acd"), _marker("fm-arrow-taken", _TAKEN_STROKE),
        "</defs>",
        '<g class="edges">',
    ]
    for edge in edges:
        out.append(_edge_svg(edge, layout, marks))
    out.append("</g>")
    out.append('<g class="nodes">')
    for step_id in drawn:
        out.append(_node_svg(flow, flow.steps[step_id], layout.boxes[step_id], marks))
    out.append("</g>")
    if left_out:
        out.append(f'<text class="left-out" x="{_n(12)}" y="{_n(height - 8)}" font-size="12" '
                   f'fill="#66727f">{left_out} more step{"s" if left_out != 1 else ""} not '
                   f"drawn (at most {MAX_DRAWN_STEPS} are)</text>")
    out.append("</svg>")
    return "".join(out)


def _drawn_steps(flow: Flow) -> list[str]:
    """Step ids in breadth-first order from the initial step (then the unreachable
    ones in definition order), at most :data:`MAX_DRAWN_STEPS`."""
    succ: dict[str, list[str]] = {}
    for edge in flow_edges(flow):
        succ.setdefault(edge.source, []).append(edge.target)
    order: dict[str, None] = {}
    roots = [flow.initial_step_id, *flow.steps] if flow.initial_step_id in flow.steps \
        else list(flow.steps)
    for root in roots:
        if root in order:
            continue
        queue = [root]
        order[root] = None
        while queue and len(order) < MAX_DRAWN_STEPS:
            nxt: list[str] = []
            for node in queue:
                for target in succ.get(node, ()):
                    if target not in order and len(order) < MAX_DRAWN_STEPS:
                        order[target] = None
                        nxt.append(target)
            queue = nxt
        if len(order) >= MAX_DRAWN_STEPS:
            break
    return list(order)


def _visual_boxes(flow: Flow, drawn: Sequence[str]) -> dict[str, Box] | None:
    """The editor's boxes for the drawn steps, or None unless every one has a sane
    position (``x``/``y`` or ``position: {x, y}``, the top-left corner)."""
    if flow.visual is None or not drawn:
        return None
    boxes: dict[str, Box] = {}
    for step_id in drawn:
        node = flow.visual.nodes.get(step_id)
        if not isinstance(node, Mapping):
            return None
        where = node.get("position") if "x" not in node else node
        if not isinstance(where, Mapping):
            return None
        x, y = _coord(where.get("x")), _coord(where.get("y"))
        if x is None or y is None:
            return None
        w = _size(node.get("width"), NODE_WIDTH)
        h = _size(node.get("height"), NODE_HEIGHT)
        boxes[step_id] = Box(x, y, w, h)
    return boxes


def _coord(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and abs(number) <= MAX_VISUAL_COORD else None


def _size(value: Any, default: float) -> float:
    number = _coord(value)
    low, high = VISUAL_SIZE_RANGE
    return number if number is not None and low <= number <= high else default


def _node_svg(flow: Flow, step: Step, box: Box, marks: StepMarks) -> str:
    classes = ["step"]
    if step.id == flow.initial_step_id:
        classes.append("initial")
    for name, on in (("visited", step.id in marks.visited), ("current", step.id == marks.current),
                     ("failed", step.id in marks.failed), ("retried", step.id in marks.retried)):
        if on:
            classes.append(name)
    strongest = next((c for c in ("failed", "current", "visited") if c in classes), "")
    fill, stroke, stroke_width = _NODE_STYLE[strongest]
    chars = max(4, int((box.w - 16) / 7.6))
    title = step.name or step.id
    kind = step.type + (f" · retry {step.retry.max_attempts}" if step.retry else "")
    tip = f"{step.id} ({step.type})" + (f" — {step.name}" if step.name else "")
    if step.description:
        tip += f": {step.description}"
    cx = box.cx
    parts = [
        f'<g class="{" ".join(classes)}" data-step="{_attr(step.id)}" '
        f'data-type="{_attr(step.type)}">',
        f"<title>{_text(_cut(tip, MAX_TITLE_CHARS))}</title>",
        f'<rect x="{_n(box.x)}" y="{_n(box.y)}" width="{_n(box.w)}" height="{_n(box.h)}" '
        f'rx="8" fill="{fill}" stroke="{stroke}" stroke-width="{stroke_width}"/>',
        f'<text x="{_n(cx)}" y="{_n(box.y + box.h / 2 - 3)}" text-anchor="middle" '
        f'font-size="13" font-weight="600" fill="#1f2933">{_text(_cut(title, chars))}</text>',
        f'<text class="type" x="{_n(cx)}" y="{_n(box.y + box.h / 2 + 13)}" '
        f'text-anchor="middle" font-size="11" fill="#52606d">'
        f"{_text(_cut(kind, chars + 4))}</text>",
    ]
    if step.id == flow.initial_step_id:
        parts.append(f'<circle class="start" cx="{_n(cx)}" cy="{_n(box.y - 9)}" r="5" '
                     f'fill="#52606d"/>')
    badges = [("failed", "✕ failed", "#c62828")] if "failed" in classes else []
    if "retried" in classes:
        badges.append(("retried", "↻ retried", "#b26a00"))
    if "current" in classes and "failed" not in classes:
        badges.append(("here", "● here", "#1565c0"))
    # pills on the top-right corner, clear of the arrows that meet the box's middle
    bx = box.x + box.w - 22
    for name, label, colour in badges:
        width = 12 + 6.4 * len(label)
        parts.append(
            f'<g class="badge badge-{name}"><rect x="{_n(bx)}" y="{_n(box.y - 9)}" '
            f'width="{_n(width)}" height="16" rx="8" fill="{colour}"/>'
            f'<text x="{_n(bx + width / 2)}" y="{_n(box.y + 3)}" text-anchor="middle" '
            f'font-size="10" font-weight="600" fill="#ffffff">{label}</text></g>')
        bx += width + 4
    parts.append("</g>")
    return "".join(parts)


def _edge_svg(edge: FlowEdge, layout: Layout, marks: StepMarks) -> str:
    a, b = edge.source, edge.target
    taken = (a, b) in marks.taken
    main = edge.kinds[0]
    stroke, dash = _EDGE_STYLE[main]
    marker = {"failure": "fm-arrow-fail", "resume": "fm-arrow-resume"}.get(main, "fm-arrow")
    width = "1.4"
    if taken:
        stroke, marker, width = _TAKEN_STROKE, "fm-arrow-taken", "2.6"
    classes = ["edge", *edge.kinds] + (["taken"] if taken else []) + \
        (["back"] if (a, b) in layout.back else [])
    if a == b:
        box = layout.boxes[a]
        x, y = box.x + box.w, box.cy
        d = (f"M{_n(x)},{_n(y - 8)} C{_n(x + 34)},{_n(y - 26)} {_n(x + 34)},{_n(y + 26)} "
             f"{_n(x)},{_n(y + 8)}")
        label_at: Point = (x + 30, y - 14)
    else:
        points = layout.routes[(a, b)]
        d = _path(points, (a, b) in layout.back)
        label_at = _label_point(points)
    dash_attr = f' stroke-dasharray="{dash}"' if dash and not taken else ""
    parts = [
        f'<g class="{" ".join(classes)}" data-from="{_attr(a)}" data-to="{_attr(b)}">',
        f'<path d="{d}" fill="none" stroke="{stroke}" stroke-width="{width}"{dash_attr} '
        f'marker-end="url(#{marker})"/>',
    ]
    label = _edge_label(edge)
    if label:
        parts.append(
            f'<text x="{_n(label_at[0] + 4)}" y="{_n(label_at[1])}" font-size="10.5" '
            f'fill="{stroke}" stroke="#ffffff" stroke-width="3" paint-order="stroke">'
            f"{_text(label)}</text>")
    parts.append("</g>")
    return "".join(parts)


def _edge_label(edge: FlowEdge) -> str:
    labels = edge.labels
    if not labels:
        return ""
    shown = [_cut(label, MAX_LABEL_CHARS) for label in labels[:MAX_LABELS_PER_EDGE]]
    more = len(labels) - len(shown)
    return ", ".join(shown) + (f" +{more}" if more else "")


def _path(points: Sequence[Point], back: bool) -> str:
    """A smooth path through ``points``: vertical tangents between layers, horizontal
    ones where a back edge leaves and enters its nodes' sides."""
    (x0, y0), rest = points[0], points[1:]
    d = [f"M{_n(x0)},{_n(y0)}"]
    if len(points) == 2 and not back:
        (x1, y1) = rest[0]
        if abs(x1 - x0) < 0.5 or abs(y1 - y0) < 1:
            return f"{d[0]} L{_n(x1)},{_n(y1)}"
    prev = points[0]
    for i, point in enumerate(rest):
        (px, py), (x, y) = prev, point
        if back and (i == 0 or i == len(rest) - 1):
            # horizontal at the node's side, vertical toward the waypoint
            c1 = (px + (x - px) * 0.9, py) if i == 0 else (px, py + (y - py) * 0.5)
            c2 = (x, py + (y - py) * 0.1) if i == 0 else (x + (px - x) * 0.9, y)
        else:
            my = (py + y) / 2
            c1, c2 = (px, my), (x, my)
        d.append(f" C{_n(c1[0])},{_n(c1[1])} {_n(c2[0])},{_n(c2[1])} {_n(x)},{_n(y)}")
        prev = point
    return "".join(d)


def _label_point(points: Sequence[Point]) -> Point:
    """Where an edge's label goes: at its first bend, or past the middle of a plain
    curve (toward the target, so the labels of a fan of edges spread out)."""
    if len(points) > 2:
        return points[1]
    (x0, y0), (x1, y1) = points[0], points[-1]
    t = 0.62  # on the curve with vertical tangents that _path draws
    u = 1 - t
    return (x0 * (u**3 + 3 * u * u * t) + x1 * (3 * u * t * t + t**3), y0 + (y1 - y0) * t)


def _marker(name: str, colour: str) -> str:
    # sized in user units: an arrow keeps its size on a thicker (taken) edge
    return (f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" '
            f'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" '
            f'fill="{colour}"/></marker>')


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: max(1, chars - 1)] + "…"


def _clean(text: str) -> str:
    return _UNSAFE.sub("\ufffd", text)


def _text(text: str) -> str:
    return escape(_clean(text), quote=False)


def _attr(text: str) -> str:
    return escape(_clean(text), quote=True)


def _n(value: float) -> str:
    """A coordinate, short: ``12`` or ``12.5``."""
    return f"{value:.1f}".rstrip("0").rstrip(".")
