"""`flowhost worker test FUNCTION --input JSON`: one step function run once in its own runtime
(a Python child, a Node child, or in-process), with no database."""

from __future__ import annotations

import json
from pathlib import Path

from flowhost.cli.exit_codes import NOT_FOUND, RUN_FAILED, USAGE
from tests.support.cli import flowhost
from tests.support.engine import write_functions

STEPS = """
import os
from flowhost_worker import step

@step(flow="shop", name="price", entry=True, emits=["priced"])
async def price(order, ctx):
    ctx.logger.info("pricing", items=len(order["items"]))
    print("from stdout")
    seen = await ctx.state.get("seen", 0)
    await ctx.state.set("seen", seen + 1)
    await ctx.state.delete("draft")
    await ctx.emit("priced", {"total": sum(order["items"])})
    await ctx.flow.start("audit", {"order": order["id"]})
    return {"total": sum(order["items"]), "pid": os.getpid(), "attempt": ctx.attempt}

@step(flow="shop", name="sneaky", subscribes=["priced"])
async def sneaky(events, ctx):
    await ctx.emit("undeclared", {})

@step(flow="other", name="price", entry=True, isolation="inprocess")
async def price_here(data, ctx):
    ctx.logger.warning("in the host's process")
    return os.getpid()
"""

NODE_STEP = """
import { defineFunction } from '@flowhost/worker'
export const config = { flow: { name: 'shop', step: 'label', subscribes: ['priced'] } }
export default defineFunction(async (input, ctx) => {
  ctx.logger.info('labelling')
  return { label: `total ${input.priced.total}` }
})
"""


def project(tmp_path: Path) -> Path:
    return write_functions(tmp_path, {"shop.py": STEPS, "label.mjs": NODE_STEP})


def test_a_python_step_in_a_child(tmp_path: Path) -> None:
    root = project(tmp_path)
    result = flowhost(
        "worker", "test", "shop/price", "--input", '{"id": "A-1", "items": [2, 3]}',
        "--state", '{"seen": 4, "draft": true}', "--attempt", "2", "--json",
        project=root, database_url=None,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["function"] == "shop/price" and outcome["status"] == "completed"
    assert outcome["runtime"] == "python" and outcome["isolation"] == "process"
    assert outcome["result"]["total"] == 5 and outcome["result"]["attempt"] == 2
    assert outcome["logs"][0] == {"level": "info", "message": "pricing", "fields": {"items": 2}}
    assert {"level": "info", "message": "from stdout", "fields": {"stream": "stdout"}} in (
        outcome["logs"]
    )
    assert outcome["emits"] == [{"name": "priced", "payload": {"total": 5}}]
    assert outcome["state_writes"] == [
        {"op": "set", "key": "seen", "value": 5},
        {"op": "delete", "key": "draft", "deleted": True},
    ]
    assert outcome["state"] == {"seen": 5}
    assert outcome["started_runs"] == [{"flow": "audit", "input": {"order": "A-1"}, "options": {}}]
    # No database was needed: none was configured, and no embedded server was started.
    assert not (root / ".flowhost" / "pg").exists()

    text = flowhost(
        "worker", "test", "shop/price", "--input", '{"id": "A-1", "items": [2, 3]}',
        project=root, database_url=None,
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("shop/price: python, in a child process (")
    assert "  INFO    pricing items=2" in lines
    assert 'emit priced {"total":5}' in lines and "state set seen = 1" in lines
    assert lines[-2].startswith('result: {"total":5,') and lines[-1].startswith("completed in ")
    assert "\x1b[" not in text.stdout


def test_a_node_step_and_an_in_process_step(tmp_path: Path) -> None:
    root = project(tmp_path)
    node = flowhost(
        "worker", "test", "label", "--input", '{"priced": {"total": 5}}', "--json",
        project=root, database_url=None,
    )  # fmt: skip
    assert node.returncode == 0, node.stderr
    outcome = json.loads(node.stdout)
    assert outcome["runtime"] == "node" and outcome["result"] == {"label": "total 5"}
    assert [log["message"] for log in outcome["logs"]] == ["labelling"]

    here = flowhost("worker", "test", "other/price", "--json", project=root, database_url=None)
    assert here.returncode == 0, here.stderr
    outcome = json.loads(here.stdout)
    assert outcome["isolation"] == "inprocess" and isinstance(outcome["result"], int)
    assert outcome["logs"] == [
        {"level": "warning", "message": "in the host's process", "fields": {}}
    ]


def test_failures_exit_1_with_the_error(tmp_path: Path) -> None:
    root = project(tmp_path)
    raised = flowhost(
        "worker", "test", "shop/price", "--input", '{"items": "no"}', project=root,
        database_url=None,
    )  # fmt: skip
    assert raised.returncode == RUN_FAILED
    assert raised.stdout.splitlines()[-2] == (
        "error: TypeError: unsupported operand type(s) for +: 'int' and 'str'"
    )
    assert "Traceback" in raised.stderr and "shop.py" in raised.stderr

    refused = flowhost("worker", "test", "sneaky", "--json", project=root, database_url=None)
    assert refused.returncode == RUN_FAILED
    error = json.loads(refused.stdout)["error"]
    assert "emits 'undeclared' but declares emits=[nothing]" in error["message"]


def test_unknown_and_ambiguous_functions(tmp_path: Path) -> None:
    root = project(tmp_path)
    unknown = flowhost("worker", "test", "nope", project=root, database_url=None)
    assert unknown.returncode == NOT_FOUND
    assert unknown.stderr.startswith("flowhost: error: no step or function 'nope' in the project")
    ambiguous = flowhost("worker", "test", "price", project=root, database_url=None)
    assert ambiguous.returncode == USAGE
    assert "'price' names several steps (other/price, shop/price): give FLOW/STEP" in (
        ambiguous.stderr
    )
    no_step = flowhost("worker", "test", "shop/nope", project=root, database_url=None)
    assert no_step.returncode == NOT_FOUND and "flow 'shop' has no step 'nope'" in no_step.stderr
    bad_state = flowhost("worker", "test", "sneaky", "--state", "[]", project=root,
                         database_url=None)  # fmt: skip
    assert bad_state.returncode == USAGE and "--state must be a JSON object" in bad_state.stderr
