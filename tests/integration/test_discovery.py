"""Discovery through a child process: the example's flow, and problems with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowhost.engine.discovery import discover
from flowhost.errors import DiscoveryError


async def test_the_orders_example_is_two_valid_flows(orders_project: Path) -> None:
    found = await discover(orders_project / "functions")
    assert found.problems == []
    assert sorted(found.flows) == ["orders", "refunds"]
    refunds = found.flows["refunds"]
    assert refunds.entry == "request" and refunds.subscriptions["pay"] == ("refund.requested",)
    approval = refunds.step("pay").await_before
    assert approval is not None and approval.type == "webhook"
    triggers = refunds.step("request").triggers
    assert triggers is not None and triggers.define[0].type == "manual"
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


AWAITS_PY = """\
from flowhost_worker import Await, step


async def mail(data, ctx):
    pass


def not_async(data, ctx):
    pass


@step(flow="py_cron", entry=True, await_before=Await.schedule("61 * * * *"))
async def bad_cron(data, ctx):
    return data


@step(flow="py_tz", entry=True, await_after=Await.schedule("@daily", "Mars/Base"))
async def bad_zone(data, ctx):
    return data


@step(
    flow="py_hooks",
    entry=True,
    await_before=Await.webhook(on_register=mail, on_resolve="not_async", on_timeout="gone"),
)
async def hooks(data, ctx):
    return data


@step(flow="py_ok", entry=True, await_before=Await.event("paid", on_resolve=mail))
async def fine(data, ctx):
    return data
"""

AWAITS_JS = """\
export const config = {
  flow: {
    name: 'js_hooks', step: 'approve', role: 'entry',
    awaitBefore: { type: 'schedule', cron: '0 9 * * *', timezone: 'Nowhere/Land',
                   hooks: { register: 'mail', resolve: 'notExported', timeout: 'value' } },
  },
}
export async function mail(data, ctx) {}
async function notExported(data, ctx) {}
export const value = 42
export default async (input, ctx) => notExported
"""


async def test_awaits_with_a_bad_cron_zone_or_hook_are_problems_at_their_step(
    tmp_path: Path,
) -> None:
    (tmp_path / "awaits.py").write_text(AWAITS_PY)
    (tmp_path / "awaits.mjs").write_text(AWAITS_JS)
    found = await discover(tmp_path)
    assert list(found.flows) == ["py_ok"]
    js = [p for p in found.problems if p.flow == "js_hooks"]
    assert {(Path(p.file).name, p.line) for p in js} == {("awaits.mjs", 11)}
    assert all(p.message.startswith("flow 'js_hooks': step 'approve': awaitBefore: ") for p in js)
    messages = [p.message for p in js]
    assert any('unknown time zone "Nowhere/Land"' in m for m in messages)
    assert any("resolve hook 'notExported' is not an exported function" in m for m in messages)
    assert any("timeout hook 'value' is not an exported function" in m for m in messages)
    assert not any("'mail'" in m for m in messages)
    by_flow = {p.flow: (Path(p.file).name, p.line, p.message) for p in found.problems}
    assert by_flow["py_cron"][:2] == ("awaits.py", 12)
    assert 'minute field "61"' in by_flow["py_cron"][2]
    assert 'unknown time zone "Mars/Base"' in by_flow["py_tz"][2]
    assert "await_after" in by_flow["py_tz"][2]
    hooks = [p.message for p in found.problems if p.flow == "py_hooks"]
    assert sorted(hooks) == [
        f"flow 'py_hooks': step 'hooks': await_before: the resolve hook 'not_async' is not an "
        f"async function of {tmp_path / 'awaits.py'}",
        f"flow 'py_hooks': step 'hooks': await_before: the timeout hook 'gone' is not an "
        f"async function of {tmp_path / 'awaits.py'}",
    ]
    assert len(js) == 3 and len(found.problems) == 7
