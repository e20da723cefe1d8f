"""Where each node of a flow graph goes: a small layered (Sugiyama-style) layout.

Pure geometry over node ids and directed edges, no SVG: :func:`layered` places nodes
top to bottom in layers (cycles broken by reversing the edges that close them, long
edges bent through one waypoint per layer they cross, nodes ordered within a layer by
the barycenter of their neighbours to cut crossings) and :func:`positioned` takes the
positions an editor stored. Both return a :class:`Layout`: a box per node and a
polyline per edge. The caller bounds the graph (``graph.MAX_DRAWN_STEPS``); the work
here is about linear in nodes + edges x layers, and waypoints stop at
:data:`MAX_WAYPOINTS` (longer edges are then drawn straight).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NODE_WIDTH = 176.0
NODE_HEIGHT = 46.0
H_GAP = 28.0  # between neighbours in a layer
V_GAP = 56.0  # between layers
MARGIN = 24.0
WAYPOINT_WIDTH = 16.0
BACK_EDGE_BULGE = 36.0  # how far a back edge swings out beside its nodes
MAX_WAYPOINTS = 4000
SWEEPS = 4

Point = tuple[float, float]
Edge = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Box:
    """A node's rectangle: top-left corner and size."""

    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass(frozen=True, slots=True)
class Layout:
    boxes: dict[str, Box]
    routes: dict[Edge, list[Point]]  # from the source's border to the target's
    back: frozenset[Edge]  # edges drawn against the flow of the layers
    width: float
    height: float


def layered(nodes: Sequence[str], edges: Sequence[Edge]) -> Layout:
    """Layers top to bottom; ``nodes`` in their preferred order (the first is the
    root: the flow's initial step), ``edges`` between them (self-loops are left to the
    caller: they get no route)."""
    index = {node: i for i, node in enumerate(nodes)}
    real = [(a, b) for a, b in dict.fromkeys(edges) if a != b and a in index and b in index]
    back = _back_edges(nodes, real)
    dag = list(dict.fromkeys((b, a) if (a, b) in back else (a, b) for a, b in real))
    layer = _layers(nodes, dag)
    # one waypoint per layer crossed, so long edges bend around the nodes between
    chains: dict[Edge, list[str]] = {}
    width = dict.fromkeys(nodes, NODE_WIDTH)
    layer_of = dict(layer)
    spare = MAX_WAYPOINTS
    for a, b in dag:
        span = layer[b] - layer[a]
        chain = [a]
        if 1 < span <= spare + 1:
            spare -= span - 1
            for k in range(1, span):
                way = f"\0{a}\0{b}\0{k}"
                layer_of[way] = layer[a] + k
                width[way] = WAYPOINT_WIDTH
                chain.append(way)
        chain.append(b)
        chains[(a, b)] = chain
    rows = _ordered_rows(nodes, layer_of, chains)
    centers = _x_centers(rows, chains, width)
    boxes: dict[str, Box] = {}
    way_points: dict[str, Point] = {}
    for depth, row in enumerate(rows):
        y = MARGIN + depth * (NODE_HEIGHT + V_GAP)
        for node in row:
            if node in index:
                boxes[node] = Box(centers[node] - NODE_WIDTH / 2, y, NODE_WIDTH, NODE_HEIGHT)
            else:
                way_points[node] = (centers[node], y + NODE_HEIGHT / 2)
    routes: dict[Edge, list[Point]] = {}
    for a, b in real:
        if (a, b) in back:
            middle = [way_points[w] for w in reversed(chains[(b, a)][1:-1])]
            if (b, a) in real:  # the forward edge runs through the same waypoints
                middle = [(x + BACK_EDGE_BULGE, y) for x, y in middle]
            routes[(a, b)] = _back_route(boxes[a], boxes[b], middle)
        else:
            middle = [way_points[w] for w in chains[(a, b)][1:-1]]
            ba, bb = boxes[a], boxes[b]
            routes[(a, b)] = [(ba.cx, ba.y + ba.h), *middle, (bb.cx, bb.y)]
    return _framed(boxes, routes, frozenset(back))


def positioned(boxes: Mapping[str, Box], edges: Sequence[Edge]) -> Layout:
    """The stored positions, moved so the top-left node sits at the margin; each edge
    a line between the two boxes' borders, bowed aside when the reverse edge exists
    too so that the two stay apart."""
    if not boxes:
        return Layout({}, {}, frozenset(), 2 * MARGIN, 2 * MARGIN)
    dx = MARGIN - min(b.x for b in boxes.values())
    dy = MARGIN - min(b.y for b in boxes.values())
    moved = {k: Box(b.x + dx, b.y + dy, b.w, b.h) for k, b in boxes.items()}
    pairs = set(edges)
    routes: dict[Edge, list[Point]] = {}
    for a, b in dict.fromkeys(edges):
        if a == b or a not in moved or b not in moved:
            continue
        ba, bb = moved[a], moved[b]
        start = _border(ba, (bb.cx, bb.cy))
        end = _border(bb, (ba.cx, ba.cy))
        if (b, a) in pairs:
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            length = math.hypot(end[0] - start[0], end[1] - start[1]) or 1.0
            nx, ny = -(end[1] - start[1]) / length, (end[0] - start[0]) / length
            routes[(a, b)] = [start, (mx + nx * 14, my + ny * 14), end]
        else:
            routes[(a, b)] = [start, end]
    return _framed(moved, routes, frozenset())


def _back_edges(nodes: Sequence[str], edges: Sequence[Edge]) -> set[Edge]:
    """Edges that close a cycle in a depth-first walk from the nodes in order."""
    succ: dict[str, list[str]] = {node: [] for node in nodes}
    for a, b in edges:
        succ[a].append(b)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[Edge] = set()
    for root in nodes:
        if root in state:
            continue
        state[root] = 1
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, i = stack[-1]
            if i < len(succ[node]):
                stack[-1] = (node, i + 1)
                nxt = succ[node][i]
                seen = state.get(nxt)
                if seen == 1:
                    back.add((node, nxt))
                elif seen is None:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                stack.pop()
    return back


def _layers(nodes: Sequence[str], dag: Sequence[Edge]) -> dict[str, int]:
    """Longest path from a source: every edge points at least one layer down."""
    indegree = dict.fromkeys(nodes, 0)
    succ: dict[str, list[str]] = {node: [] for node in nodes}
    for a, b in dag:
        succ[a].append(b)
        indegree[b] += 1
    layer = dict.fromkeys(nodes, 0)
    ready = [node for node in nodes if indegree[node] == 0]
    while ready:
        node = ready.pop()
        for nxt in succ[node]:
            layer[nxt] = max(layer[nxt], layer[node] + 1)
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    return layer


def _ordered_rows(nodes: Sequence[str], layer_of: Mapping[str, int],
                  chains: Mapping[Edge, list[str]]) -> list[list[str]]:
    """Each layer's nodes, ordered by barycenter sweeps down and up."""
    depth = max(layer_of.values(), default=0) + 1
    rows: list[list[str]] = [[] for _ in range(depth)]
    for node in nodes:
        rows[layer_of[node]].append(node)
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for chain in chains.values():
        for a, b in itertools.pairwise(chain):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    for chain in chains.values():  # waypoints join the row of their layer, in order
        for way in chain[1:-1]:
            rows[layer_of[way]].append(way)
    for sweep in range(SWEEPS):
        order = range(1, depth) if sweep % 2 == 0 else range(depth - 2, -1, -1)
        neighbours = up if sweep % 2 == 0 else down
        for d in order:
            ref = {node: i for i, node in enumerate(rows[d - 1 if sweep % 2 == 0 else d + 1])}
            rows[d] = _by_barycenter(rows[d], neighbours, ref)
    return rows


def _by_barycenter(row: list[str], neighbours: Mapping[str, list[str]],
                   ref: Mapping[str, int]) -> list[str]:
    def key(item: tuple[int, str]) -> float:
        i, node = item
        places = [ref[n] for n in neighbours.get(node, ()) if n in ref]
        return sum(places) / len(places) if places else float(i)
    return [node for _, node in sorted(enumerate(row), key=key)]


def _x_centers(rows: Sequence[list[str]], chains: Mapping[Edge, list[str]],
               width: Mapping[str, float]) -> dict[str, float]:
    """x of each node's center: under the mean of its parents where there is room,
    neighbours in a row kept apart."""
    parents: dict[str, list[str]] = {}
    for chain in chains.values():
        for a, b in itertools.pairwise(chain):
            parents.setdefault(b, []).append(a)
    x: dict[str, float] = {}
    for row in rows:
        wanted: list[float] = []
        slot = 0.0
        for node in row:
            placed = [x[p] for p in parents.get(node, ()) if p in x]
            wanted.append(sum(placed) / len(placed) if placed else slot + width[node] / 2)
            slot += width[node] + H_GAP
        x.update(zip(row, _spread(row, wanted, width), strict=True))
    left = min((x[n] - width[n] / 2 for n in x), default=0.0)
    return {n: v - left + MARGIN for n, v in x.items()}


def _spread(row: Sequence[str], wanted: Sequence[float],
            width: Mapping[str, float]) -> list[float]:
    """Positions as close to ``wanted`` as the order and the gaps allow: pushed apart
    left to right, then the whole row shifted back by the mean displacement."""
    out: list[float] = []
    for i, node in enumerate(row):
        x = wanted[i]
        if out:
            least = out[-1] + (width[row[i - 1]] + width[node]) / 2 + H_GAP
            x = max(x, least)
        out.append(x)
    if out:
        shift = sum(o - w for o, w in zip(out, wanted, strict=True)) / len(out)
        out = [o - shift for o in out]
    return out


def _back_route(src: Box, dst: Box, middle: list[Point]) -> list[Point]:
    """A back edge leaves its node's right side and enters the target's right side,
    swinging out so it does not run over the forward edge between the same nodes."""
    start = (src.x + src.w, src.cy)
    end = (dst.x + dst.w, dst.cy)
    if not middle:
        swing = max(start[0], end[0]) + BACK_EDGE_BULGE
        middle = [(swing, (start[1] + end[1]) / 2)]
    return [start, *middle, end]


def _border(box: Box, toward: Point) -> Point:
    """Where the line from the box's center toward a point leaves the box."""
    dx, dy = toward[0] - box.cx, toward[1] - box.cy
    if dx == 0 and dy == 0:
        return (box.cx, box.cy)
    scale = min(box.w / 2 / abs(dx) if dx else math.inf, box.h / 2 / abs(dy) if dy else math.inf)
    return (box.cx + dx * scale, box.cy + dy * scale)


def _framed(boxes: dict[str, Box], routes: dict[Edge, list[Point]],
            back: frozenset[Edge]) -> Layout:
    xs = [b.x + b.w for b in boxes.values()] + [p[0] for r in routes.values() for p in r]
    ys = [b.y + b.h for b in boxes.values()] + [p[1] for r in routes.values() for p in r]
    return Layout(boxes, routes, back,
                  max(xs, default=0.0) + MARGIN, max(ys, default=0.0) + MARGIN)
