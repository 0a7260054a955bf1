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
        "receipt": ("order.charged",),
    }
    assert flow.step("receipt").runtime == "node" and flow.step("ship").runtime == "python"
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


async def test_python_and_node_files_are_described_with_their_problems(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("from flowhost_worker import step\n\ndef oops(:\n")
    (tmp_path / "broken.mjs").write_text("export const config = {\n  flow: {\n")
    (tmp_path / "lib.mjs").write_text("export const helper = 1\n")
    (tmp_path / "go.mjs").write_text(
        "import { defineFunction } from '@flowhost/worker'\n"
        "export const config = { flow: { name: 'js', step: 'go', role: 'entry' } }\n"
        "export default defineFunction(async () => 1)\n"
    )
    found = await discover(tmp_path)
    assert list(found.flows) == ["js"] and found.flows["js"].step("go").runtime == "node"
    where = sorted((Path(p.file).name, p.line) for p in found.problems)
    assert where == [("broken.mjs", 3), ("broken.py", 3)]


async def test_a_directory_with_its_own_venv_is_described_by_that_interpreter(
    tmp_path: Path,
) -> None:
    # The invoices example's `summarize` imports humanize, which only its own venv has.
    invoices = Path(__file__).resolve().parents[2] / "examples" / "invoices" / "functions"
    found = await discover(invoices)
    assert found.problems == []
    summarize = found.flows["invoices"].step("summarize")
    assert summarize.interpreter is not None
    assert summarize.interpreter.endswith("summarize/.venv/bin/python")
