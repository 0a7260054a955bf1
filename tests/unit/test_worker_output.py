"""A child's output as the host keeps it, and a child's failure data as the host trusts it."""

from __future__ import annotations

import asyncio
import os

from flowhost.workers.failures import ChildFailure
from flowhost.workers.output import MAX_LINE, OutputBudget, OutputReader, PipeReader


async def read_lines(payload: bytes) -> list[tuple[str, str]]:
    read_end, write_end = os.pipe()
    lines: list[tuple[str, str]] = []
    reader = OutputReader("stdout", PipeReader(read_end), lambda s, line: lines.append((s, line)))

    def write() -> None:  # from a thread: a payload larger than the pipe blocks until read
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)

    await asyncio.to_thread(write)
    await asyncio.wait_for(reader.task, 5)
    return lines


async def test_lines_are_split_decoded_and_the_last_unterminated_one_kept() -> None:
    lines = await read_lines(b"one\r\ntwo\n\xff bad\nlast")
    assert lines == [
        ("stdout", "one"),
        ("stdout", "two"),
        ("stdout", "\ufffd bad"),
        ("stdout", "last"),
    ]


async def test_a_line_longer_than_the_limit_is_cut_and_marked_the_next_kept() -> None:
    lines = await read_lines(b"x" * (20 * MAX_LINE) + b"\nnext\n")
    assert lines == [("stdout", "x" * MAX_LINE + " [line cut]"), ("stdout", "next")]


async def test_settle_hands_over_what_the_pipe_holds_now_then_reading_goes_on() -> None:
    # What a child wrote before its answer is in the pipe when the answer arrives: settle()
    # hands it all over at once, without waiting for the loop to notice the pipe is readable.
    read_end, write_end = os.pipe()
    lines: list[str] = []
    reader = OutputReader("stdout", PipeReader(read_end), lambda _s, line: lines.append(line))
    os.write(write_end, b"one\ntwo\nhalf a line")
    await reader.settle()
    assert lines == ["one", "two", "half a line"]  # an unfinished line ends at the answer
    os.write(write_end, b"x" * (3 * MAX_LINE) + b"\nlater\n")
    os.close(write_end)
    await asyncio.wait_for(reader.task, 5)
    assert lines[3:] == ["x" * MAX_LINE + " [line cut]", "later"]
    await reader.settle()  # after the end: returns at once


async def test_settle_with_everything_read_already_ends_the_line_in_hand() -> None:
    read_end, write_end = os.pipe()
    lines: list[str] = []
    reader = OutputReader("stdout", PipeReader(read_end), lambda _s, line: lines.append(line))
    os.write(write_end, b"whole\npart")
    async with asyncio.timeout(5):
        while lines != ["whole"]:  # read by the loop: the pipe is empty, "part" in hand
            await asyncio.sleep(0.01)
    await reader.settle()
    assert lines == ["whole", "part"]
    os.write(write_end, b" of the next\n")
    os.close(write_end)
    await asyncio.wait_for(reader.task, 5)
    assert lines == ["whole", "part", " of the next"]


def test_the_budget_keeps_lines_until_full_then_counts_bytes() -> None:
    budget = OutputBudget(limit=10)
    assert budget.admit("1234") and budget.admit("5678")
    assert not budget.admit("9")
    assert (budget.kept, budget.dropped) == (10, 2)


def test_failure_data_from_a_child_is_checked_not_trusted() -> None:
    good = ChildFailure.from_data(
        {"type": "ValueError", "message": "no", "stack": "tb", "retry_delay": 1.5}, "fallback"
    )
    assert (good.type, good.message, good.stack, good.retry_delay) == (
        "ValueError",
        "no",
        "tb",
        1.5,
    )
    for delay in (True, -1, float("inf"), "2", 1e12):
        assert ChildFailure.from_data({"retry_delay": delay}, "x").retry_delay is None
    odd = ChildFailure.from_data(["not", "a", "map"], "fallback")
    assert (odd.type, odd.message) == ("Error", "fallback")
    assert ChildFailure.from_data({"type": "T" * 500}, "x").type == "T" * 200
