"""A flow's step graph as text: layers of boxes joined by arrows (`flowhost flows show`).

Pure: a FlowDefinition in, lines out. Steps are ranked by their longest path from the entry
step, so every arrow points down; an arrow spanning several layers passes between the boxes of
the layers it skips. Each box says what its step waits for (`on a + b`: an AND-join, all of
them), how it runs (runtime, attempts, timeout) and its awaits. Between two layers, every step
that has arrows leaving it gets a row of its own to fan out on, and each arrow enters its
target at a point of its own, so that crossings never look like joins.

`list_lines` is the same graph as an indented list, for a terminal too narrow for the drawing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from flowhost.engine.definitions import AwaitDefinition, FlowDefinition, StepDefinition

MAX_BOX_TEXT = 40  # characters of text per box line; longer lines end with an ellipsis
BOX_GAP = 3  # columns between two boxes of a layer
LINE_GAP = 2  # columns beside a line passing through a layer

# Directions a connector cell joins (bit flags), and the character for each combination.
UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8


@dataclasses.dataclass(frozen=True, slots=True)
class Charset:
    top_left: str
    top_right: str
    bottom_left: str
    bottom_right: str
    horizontal: str
    vertical: str
    stem: str  # where arrows leave a box's bottom border
    arrow: str
    ellipsis: str
    plus: str  # between the events of an AND-join
    cells: dict[int, str]


UNICODE = Charset(
    "┌", "┐", "└", "┘", "─", "│", "┬", "▼", "…", " + ",
    {
        UP | DOWN: "│", LEFT | RIGHT: "─", UP | DOWN | LEFT | RIGHT: "┼",
        DOWN | RIGHT: "┌", DOWN | LEFT: "┐", UP | RIGHT: "└", UP | LEFT: "┘",
        UP | DOWN | RIGHT: "├", UP | DOWN | LEFT: "┤",
        LEFT | RIGHT | DOWN: "┬", LEFT | RIGHT | UP: "┴",
        UP: "│", DOWN: "│", LEFT: "─", RIGHT: "─",
    },
)  # fmt: skip
ASCII = Charset(
    "+", "+", "+", "+", "-", "|", "+", "v", "...", " + ",
    {mask: ("|" if mask in (UP, DOWN, UP | DOWN) else "-" if mask in (LEFT, RIGHT, LEFT | RIGHT)
            else "+") for mask in range(1, 16)},
)  # fmt: skip


@dataclasses.dataclass(slots=True)
class Node:
    """A step's box, or (`step` None) a point where a long arrow passes through a layer."""

    key: str
    step: StepDefinition | None
    lines: list[str]
    preds: list[str]
    left: int = 0

    @property
    def width(self) -> int:
        return 1 if self.step is None else max(map(len, self.lines)) + 4

    @property
    def centre(self) -> int:
        return self.left + self.width // 2


def ranks(flow: FlowDefinition) -> dict[str, int]:
    """Each step's layer: the length of the longest path to it from a step that waits for
    nothing (the entry step)."""
    preds = predecessors(flow)
    found: dict[str, int] = {}

    def rank(name: str) -> int:
        if name not in found:
            found[name] = 1 + max((rank(p) for p in preds[name]), default=-1)
        return found[name]

    for name in flow.steps:
        rank(name)
    return found


def predecessors(flow: FlowDefinition) -> dict[str, list[str]]:
    """Step -> the steps that emit an event it subscribes to (sorted)."""
    emitters: dict[str, list[str]] = {}
    for name, step in flow.steps.items():
        for event in step.emits:
            emitters.setdefault(event, []).append(name)
    return {
        name: sorted({e for event in step.subscribes for e in emitters.get(event, ())})
        for name, step in flow.steps.items()
    }


def step_lines(flow: FlowDefinition, step: StepDefinition, charset: Charset) -> list[str]:
    """What a step's box says."""
    how = [step.runtime + (" in-process" if step.isolation == "inprocess" else "")]
    if step.attempts > 1:
        how.append(f"{step.attempts} attempts")
    if step.timeout:
        how.append(f"timeout {_seconds(step.timeout)}")
    lines = [step.name + ("  (entry)" if step.name == flow.entry else ""), *_wrap("", how, ",")]
    if step.subscribes:
        lines += _wrap("on ", list(step.subscribes), charset.plus.rstrip())
    for position, declared in step.awaits().items():
        what, timeout = describe_await(declared)
        lines.append(f"await {position}: {what}")
        if timeout:
            lines.append(f"  {timeout}")
    consumed = {event for other in flow.steps.values() for event in other.subscribes}
    outside = [event for event in step.emits if event not in consumed]
    if outside:
        lines += _wrap("emits ", outside, ",")
    return [_cut(line, charset) for line in lines]


def _wrap(lead: str, words: list[str], separator: str) -> list[str]:
    """`lead` and `words` joined by `separator` on lines of at most MAX_BOX_TEXT characters
    (a word longer than that is cut later)."""
    lines = [lead + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + len(separator) + 1 + len(word) <= MAX_BOX_TEXT:
            lines[-1] += f"{separator} {word}"
        else:
            lines[-1] += separator
            lines.append(" " * len(lead) + word)
    return lines


def describe_await(declared: AwaitDefinition) -> tuple[str, str]:
    """What an await waits for, and when it times out ("" if never)."""
    what = {
        "time": f"time {_seconds(declared.delay or 0)}",
        "event": f"event {declared.event}",
        "webhook": f"webhook {declared.method}",
        "schedule": f"schedule {declared.cron}",
    }.get(declared.type, declared.type)
    if declared.timeout is None:
        return what, ""
    return what, f"timeout {_seconds(declared.timeout)}, then {declared.timeout_action}"


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"


def _cut(text: str, charset: Charset) -> str:
    if len(text) <= MAX_BOX_TEXT:
        return text
    return text[: MAX_BOX_TEXT - len(charset.ellipsis)] + charset.ellipsis


def layers(flow: FlowDefinition, charset: Charset) -> list[list[Node]]:
    """The nodes of each layer, ordered and placed left to right: each node as near as it can
    be to the middle of what points to it, so that chains run straight down."""
    rank, preds = ranks(flow), predecessors(flow)
    depth = max(rank.values()) + 1
    by_layer: list[list[Node]] = [[] for _ in range(depth)]
    for name, step in flow.steps.items():
        links = []
        for pred in preds[name]:
            # An arrow over skipped layers goes through a passing point in each of them.
            previous = pred
            for layer in range(rank[pred] + 1, rank[name]):
                key = f"{pred}->{name}@{layer}"
                by_layer[layer].append(Node(key, None, [], [previous]))
                previous = key
            links.append(previous)
        by_layer[rank[name]].append(Node(name, step, step_lines(flow, step, charset), links))
    placed: dict[str, Node] = {}
    above: list[Node] = []
    for nodes in by_layer:

        def wanted(node: Node) -> float:
            if not node.preds:
                return 0.0
            return sum(placed[p].centre for p in node.preds) / len(node.preds)

        nodes.sort(key=lambda n: (wanted(n), n.step is None, n.key))
        cursor = 0
        for index, node in enumerate(nodes):
            if index:
                both_boxes = nodes[index - 1].step is not None and node.step is not None
                cursor += BOX_GAP if both_boxes else LINE_GAP
            node.left = max(cursor, round(wanted(node)) - node.width // 2)
            if node.step is None:
                # Not in a column where another arrow leaves the layer above: the two
                # would look like one line.
                others = {n.centre for n in above if n.key != node.preds[0]}
                while node.left in others:
                    node.left += 1
            cursor = node.left + node.width
            placed[node.key] = node
        above = nodes
    return by_layer


def graph_lines(flow: FlowDefinition, charset: Charset = UNICODE) -> list[str]:
    """The drawing, one string per line (trailing spaces removed)."""
    placed = layers(flow, charset)
    width = max(node.left + node.width for nodes in placed for node in nodes)
    rows: list[str] = []
    for index, nodes in enumerate(placed):
        below = placed[index + 1] if index + 1 < len(placed) else []
        leaving = {pred for node in below for pred in node.preds}
        rows += _box_rows(nodes, leaving, width, charset)
        if below:
            rows += _connector_rows(nodes, below, width, charset)
    return [row.rstrip() for row in rows]


def _box_rows(nodes: Sequence[Node], leaving: set[str], width: int, charset: Charset) -> list[str]:
    height = max(len(node.lines) for node in nodes) + 2
    canvas = [[" "] * width for _ in range(height)]
    for node in nodes:
        if node.step is None:
            for row in canvas:
                row[node.left] = charset.vertical
            continue
        inner = node.width - 4
        bottom = charset.horizontal * (node.width - 2)
        if node.key in leaving:
            middle = node.width // 2 - 1
            bottom = bottom[:middle] + charset.stem + bottom[middle + 1 :]
        texts = [
            f"{charset.top_left}{charset.horizontal * (node.width - 2)}{charset.top_right}",
            *(
                f"{charset.vertical} {line.ljust(inner)} {charset.vertical}"
                for line in node.lines + [""] * (height - 2 - len(node.lines))
            ),
            f"{charset.bottom_left}{bottom}{charset.bottom_right}",
        ]
        for row, text in zip(canvas, texts, strict=True):
            row[node.left : node.left + node.width] = list(text)
    return ["".join(row) for row in canvas]


def _ports(below: Sequence[Node], stems: dict[str, int]) -> dict[tuple[str, str], int]:
    """Where each arrow enters its target: one point per arrow, spread over the top of the
    box in the order of their sources, never in a column where another arrow leaves."""
    ports: dict[tuple[str, str], int] = {}
    for node in below:
        if node.step is None:
            ports[(node.preds[0], node.key)] = node.left
            continue
        low, high = node.left + 1, node.left + node.width - 2
        sources = sorted(node.preds, key=lambda p: stems[p])
        taken: set[int] = set()
        for position, source in enumerate(sources):
            if len(sources) == 1:
                # Straight down from its source when the box is under it.
                wanted = stems[source] if low <= stems[source] <= high else node.centre
            else:
                wanted = low + (position + 1) * (high - low) // (len(sources) + 1)
            others = {x for key, x in stems.items() if key != source} | taken
            for shift in (0, 1, -1, 2, -2, 3, -3):
                if low <= wanted + shift <= high and wanted + shift not in others:
                    wanted += shift
                    break
            taken.add(wanted)
            ports[(source, node.key)] = wanted
    return ports


def _connector_rows(
    nodes: Sequence[Node], below: Sequence[Node], width: int, charset: Charset
) -> list[str]:
    stems = {node.key: node.centre for node in nodes}
    ports = _ports(below, stems)
    targets: dict[str, list[int]] = {}
    for (source, _target), x in sorted(ports.items()):
        targets.setdefault(source, []).append(x)
    # A source with one arrow straight down needs no row of its own.
    straight = {s for s, xs in targets.items() if xs == [stems[s]]}
    fanning = sorted((s for s in targets if s not in straight), key=lambda s: stems[s])
    tracks = max(len(fanning), 1)
    grid = [[0] * width for _ in range(tracks)]
    for source in straight:
        for row in grid:
            row[stems[source]] |= UP | DOWN
    for track, source in enumerate(fanning):
        stem, xs = stems[source], targets[source]
        for row in grid[:track]:
            row[stem] |= UP | DOWN
        grid[track][stem] |= UP
        low, high = min(stem, *xs), max(stem, *xs)
        for x in range(low, high + 1):
            grid[track][x] |= (LEFT if x > low else 0) | (RIGHT if x < high else 0)
        for x in xs:
            grid[track][x] |= DOWN
            for row in grid[track + 1 :]:
                row[x] |= UP | DOWN
    rows = ["".join(charset.cells.get(mask, " ") for mask in row) for row in grid]
    arrows = [" "] * width
    kinds = {node.key: node.step is not None for node in below}
    for (_source, target), x in ports.items():
        arrows[x] = charset.arrow if kinds[target] else charset.vertical
    return [*rows, "".join(arrows)]


def list_lines(flow: FlowDefinition, charset: Charset = UNICODE) -> list[str]:
    """The graph as a list: layer by layer, each step with what it waits for and how it runs,
    and where its events go."""
    rank = ranks(flow)
    subscribers: dict[str, list[str]] = {}
    for name, step in sorted(flow.steps.items()):
        for event in step.subscribes:
            subscribers.setdefault(event, []).append(name)
    arrow = " -> " if charset is ASCII else " → "
    lines: list[str] = []
    for layer in range(max(rank.values()) + 1):
        names = sorted(n for n in flow.steps if rank[n] == layer)
        for position, name in enumerate(names):
            step = flow.steps[name]
            label = f"{layer + 1:>2}" if position == 0 else "  "
            first, *rest = step_lines(flow, step, charset)
            lines.append(f"{label}  {first}")
            lines += [f"      {line}" for line in rest]
            for event in step.emits:
                if event in subscribers:
                    lines.append(f"      {event}{arrow}{', '.join(subscribers[event])}")
    return lines
