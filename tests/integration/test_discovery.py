"""Discovery through a child process: the example's flow, and problems with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowhost.engine.discovery import discover
from flowhost.errors import DiscoveryError


async def test_the_orders_example_is_one_valid_flow(orders_project: Path) -> None:
    found = await discover(orders_project / "functions")
    assert found.problems == []
    flow = found.flows["orders"]
    assert flow.entry == "validate"
    assert flow.subscriptions == {
        "validate": (),
        "charge": ("order.validated",),
        "reserve": ("order.validated",),
        "ship": ("order.charged", "order.reserved"),
    }
    assert flow.step("reserve").attempts == 3
    assert flow.step("ship").file.endswith("functions/ship.py") and flow.step("ship").line == 6


async def test_a_missing_functions_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="no functions directory"):
        await discover(tmp_path / "functions")


async def test_printing_at_import_does_not_break_discovery(tmp_path: Path) -> None:
    (tmp_path / "chatty.py").write_text(
        "print('hello from import')\n"
        "from flowhost_worker import step\n\n"
        "@step(flow='c', entry=True)\nasync def go(data, ctx):\n    return 1\n"
    )
    found = await discover(tmp_path)
    assert list(found.flows) == ["c"] and found.problems == []
