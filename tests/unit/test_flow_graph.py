"""`flowhost flows show`: the step graph drawn as text (flowhost.cli.flow_graph)."""

from __future__ import annotations

import dataclasses

from flowhost.cli.flow_graph import ASCII, UNICODE, graph_lines, list_lines, ranks
from flowhost.engine.definitions import AwaitDefinition
from tests.support.flows import flow_of, make

DIAMOND = flow_of(
    make("validate", entry=True, emits=("validated",)),
    make("charge", subscribes=("validated",), emits=("charged",)),
    make("reserve", subscribes=("validated",), emits=("reserved",), runtime="node"),
    make("ship", subscribes=("charged", "reserved")),
)


def test_a_diamond_is_drawn_in_three_layers_with_an_and_join() -> None:
    assert graph_lines(DIAMOND) == [
        "┌───────────────────┐",
        "│ validate  (entry) │",
        "│ python            │",
        "└─────────┬─────────┘",
        "          ├──────────────────┐",
        "          ▼                  ▼",
        "  ┌──────────────┐   ┌──────────────┐",
        "  │ charge       │   │ reserve      │",
        "  │ python       │   │ node         │",
        "  │ on validated │   │ on validated │",
        "  └───────┬──────┘   └───────┬──────┘",
        "          └─────┐            │",
        "                │      ┌─────┘",
        "                ▼      ▼",
        "        ┌───────────────────────┐",
        "        │ ship                  │",
        "        │ python                │",
        "        │ on charged + reserved │",
        "        └───────────────────────┘",
    ]


def test_ascii_drawing_has_the_same_shape() -> None:
    unicode, ascii_only = graph_lines(DIAMOND), graph_lines(DIAMOND, ASCII)
    assert all(line.isascii() for line in ascii_only)
    assert [len(line) for line in ascii_only] == [len(line) for line in unicode]
    assert ascii_only[0] == "+-------------------+" and "v" in ascii_only[5]


def test_a_chain_runs_straight_down() -> None:
    chain = flow_of(
        make("a", entry=True, emits=("x",)),
        make("b", subscribes=("x",), emits=("y",)),
        make("c", subscribes=("y",)),
    )
    drawn = graph_lines(chain)
    stems = {line.index("┬") for line in drawn if "┬" in line}
    arrows = {line.index("▼") for line in drawn if "▼" in line}
    assert len(stems) == 1 and stems == arrows
    assert sum(line.strip() == "▼" for line in drawn) == 2


def test_an_arrow_over_a_layer_passes_beside_its_boxes() -> None:
    # start -> middle -> end, and start -> end: end is in layer 2, the arrow from start
    # passes layer 1 as a line beside the box of middle.
    skipping = flow_of(
        make("start", entry=True, emits=("s",)),
        make("middle", subscribes=("s",), emits=("m",)),
        make("end", subscribes=("s", "m")),
    )
    assert ranks(skipping) == {"start": 0, "middle": 1, "end": 2}
    drawn = graph_lines(skipping)
    middle_row = next(line for line in drawn if "│ middle" in line)
    assert middle_row.rstrip().endswith("│") and middle_row.count("│") == 3
    ends = next(i for i, line in enumerate(drawn) if "│ end" in line)
    assert drawn[ends - 2].count("▼") == 2  # two arrows enter the join


def test_boxes_say_how_steps_run_and_what_they_await() -> None:
    slow = dataclasses.replace(
        make("wait", subscribes=("x",), emits=("done.elsewhere",)),
        attempts=3,
        timeout=90.0,
        isolation="inprocess",
        await_before=AwaitDefinition(type="webhook", timeout=3600.0, timeout_action="continue"),
        await_after=AwaitDefinition(type="time", delay=5.0),
    )
    flow = flow_of(make("go", entry=True, emits=("x",)), slow)
    text = "\n".join(graph_lines(flow))
    # Wrapped at a comma: longer than a box line.
    assert "│ python in-process, 3 attempts, │\n│ timeout 90s " in text
    assert "await before: webhook POST" in text and "timeout 1h, then continue" in text
    assert "await after: time 5s" in text
    assert "emits done.elsewhere" in text  # no step of the flow takes it


def test_long_lines_are_wrapped_or_cut() -> None:
    events = tuple(f"an.event.with.a.long.name.{n}" for n in range(3))
    flow = flow_of(
        make("go", entry=True, emits=events),
        make("join_" + "x" * 60, subscribes=events),
    )
    drawn = graph_lines(flow)
    assert max(map(len, drawn)) <= 40 + 4 + 30
    assert any("join_xxx" in line and "…" in line for line in drawn)
    assert sum("an.event.with.a.long.name" in line for line in drawn) == 3


def test_list_layout() -> None:
    assert list_lines(DIAMOND) == [
        " 1  validate  (entry)",
        "      python",
        "      validated → charge, reserve",
        " 2  charge",
        "      python",
        "      on validated",
        "      charged → ship",
        "    reserve",
        "      node",
        "      on validated",
        "      reserved → ship",
        " 3  ship",
        "      python",
        "      on charged + reserved",
    ]
    assert all(line.isascii() for line in list_lines(DIAMOND, ASCII))
    assert UNICODE.arrow == "▼"
