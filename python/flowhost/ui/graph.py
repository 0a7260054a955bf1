"""A flow's step graph, laid out for the dashboard's SVG: steps in columns by rank (the
longest chain of emits that leads to them from the entry step, as `flowhost flows show` ranks
them), arrows from each step to the steps that subscribe to what it emits, labelled with the
events, and each step's awaits.

Pure layout (no I/O): the templates draw what `layout` returns.
"""

from __future__ import annotations

import dataclasses

from flowhost.cli import flow_graph
from flowhost.engine.definitions import FlowDefinition, StepDefinition

NODE_WIDTH = 168
NODE_HEIGHT = 44
AWAIT_LINE = 16
GAP_X = 120
GAP_Y = 26
PAD = 16


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    name: str
    x: float
    y: float
    width: float
    height: float
    entry: bool
    runtime: str
    # One line per await: "before: webhook POST", "after: event order.paid".
    awaits: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    events: tuple[str, ...]
    path: str  # SVG path data
    label_x: float
    label_y: float


@dataclasses.dataclass(frozen=True, slots=True)
class Graph:
    width: float
    height: float
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def step_awaits(step: StepDefinition) -> tuple[str, ...]:
    """A line per await: "waits before: webhook POST"."""
    return tuple(
        f"waits {position}: {flow_graph.describe_await(declared)[0]}"
        for position, declared in step.awaits().items()
    )


def links(flow: FlowDefinition) -> dict[tuple[str, str], tuple[str, ...]]:
    """(emitting step, subscribing step) -> the events that lead from one to the other."""
    emitters: dict[str, list[str]] = {}
    for name, step in flow.steps.items():
        for event in step.emits:
            emitters.setdefault(event, []).append(name)
    found: dict[tuple[str, str], list[str]] = {}
    for name, step in sorted(flow.steps.items()):
        for event in step.subscribes:
            for source in sorted(emitters.get(event, ())):
                found.setdefault((source, name), []).append(event)
    return {pair: tuple(events) for pair, events in found.items()}


def _columns(flow: FlowDefinition, pairs: list[tuple[str, str]]) -> list[list[str]]:
    depth = flow_graph.ranks(flow)
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    row: dict[str, float] = {}
    for index, column in enumerate(columns):
        members = [name for name in sorted(flow.steps) if depth[name] == index]

        # Each step near the steps it follows (their mean row): fewer crossing arrows.
        def weight(name: str) -> tuple[float, str]:
            before = [row[s] for s, t in pairs if t == name and s in row]
            return (sum(before) / len(before) if before else 0.0, name)

        column.extend(sorted(members, key=weight))
        row.update({name: float(i) for i, name in enumerate(column)})
    return columns


def layout(flow: FlowDefinition) -> Graph:
    edges_by_pair = links(flow)
    pairs = sorted(edges_by_pair)
    columns = _columns(flow, pairs)
    heights = {
        name: NODE_HEIGHT + AWAIT_LINE * len(step_awaits(step)) for name, step in flow.steps.items()
    }
    column_heights = [
        sum(heights[n] for n in column) + GAP_Y * max(len(column) - 1, 0) for column in columns
    ]
    tallest = max(column_heights, default=0)
    nodes: dict[str, Node] = {}
    for index, column in enumerate(columns):
        x = PAD + index * (NODE_WIDTH + GAP_X)
        y = PAD + (tallest - column_heights[index]) / 2  # columns centred on each other
        for name in column:
            step = flow.steps[name]
            nodes[name] = Node(
                name=name,
                x=x,
                y=y,
                width=NODE_WIDTH,
                height=heights[name],
                entry=step.entry,
                runtime=step.runtime if step.isolation != "inprocess" else "in-process",
                awaits=step_awaits(step),
            )
            y += heights[name] + GAP_Y
    edges = tuple(_edge(nodes[s], nodes[t], edges_by_pair[(s, t)]) for s, t in pairs)
    width = PAD * 2 + len(columns) * NODE_WIDTH + max(len(columns) - 1, 0) * GAP_X
    return Graph(width=width, height=PAD * 2 + tallest, nodes=tuple(nodes.values()), edges=edges)


def _edge(source: Node, target: Node, events: tuple[str, ...]) -> Edge:
    x1, y1 = source.x + source.width, source.y + source.height / 2
    x2, y2 = target.x, target.y + target.height / 2
    bend = max((x2 - x1) / 2, 24.0)
    path = f"M{x1:g},{y1:g} C{x1 + bend:g},{y1:g} {x2 - bend:g},{y2:g} {x2:g},{y2:g}"
    return Edge(
        source=source.name,
        target=target.name,
        events=events,
        path=path,
        label_x=(x1 + x2) / 2,
        label_y=(y1 + y2) / 2 - 4,
    )
