"""The two SDKs write the same canonical config, key for key and in the same order, for the same
declaration: each SDK's describer runs on twin Python and JavaScript files and the JSON they
print is compared with its key order."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flowhost.workers.commands import RuntimeCommands

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")

# name -> (Python decorator arguments, JavaScript `flow` fields, JavaScript top-level fields).
# Times: seconds in Python, milliseconds in JavaScript.
TWINS: dict[str, tuple[str, str, str]] = {
    "plain": ("entry=True", "role: 'entry'", ""),
    "options": (
        "subscribes=['a', 'b', 'a'], emits='c', attempts=3, timeout=2.5,"
        " backoff={'type': 'fixed', 'delay': 0.5, 'max_delay': 0.5}, reuse=4, memory=256,"
        " concurrency=2, env=['TOKEN']",
        "subscribes: ['a', 'b', 'a'], emits: 'c'",
        "attempts: 3, timeout: 2500, backoff: { type: 'fixed', delay: 500, maxDelay: 500 },"
        " reuse: 4, memory: 256, concurrency: 2, env: ['TOKEN']",
    ),
    "time": (
        "entry=True, await_before=Await.time(90, timeout=120, timeout_action='retry',"
        " attempts=5, on_register=hook_a, on_timeout='hook_b')",
        "role: 'entry', awaitBefore: { type: 'time', delay: 90000, timeout: 120000,"
        " timeoutAction: 'retry', attempts: 5, hooks: { register: 'hook_a', timeout: 'hook_b' } }",
        "",
    ),
    "event": (
        "entry=True, await_after=Await.event('payment.done', {'order': '/order/id',"
        " 'all': ''}, timeout_action='continue')",
        "role: 'entry', awaitAfter: { type: 'event', event: 'payment.done',"
        " match: { order: '/order/id', all: '' }, timeoutAction: 'continue' }",
        "",
    ),
    "webhook": (
        "entry=True, await_before=Await.webhook('patch', {'type': 'object',"
        " 'properties': {'ok': {'type': 'boolean'}}}, on_resolve='missing_hook')",
        "role: 'entry', awaitBefore: { type: 'webhook', method: 'patch', schema: { type:"
        " 'object', properties: { ok: { type: 'boolean' } } },"
        " hooks: { resolve: 'missing_hook' } }",
        "",
    ),
    "schedule": (
        "entry=True, await_before=Await.schedule(' 30  2 * * * ', 'America/New_York'),"
        " await_after=Await.time(0.0004)",
        "role: 'entry', awaitBefore: { type: 'schedule', cron: ' 30  2 * * * ',"
        " timezone: 'America/New_York' }, awaitAfter: { type: 'time', delay: 0.4 }",
        "",
    ),
    "flow_control": (
        "entry=True, concurrency=2, max_runs=3, concurrency_key='/tenant', key_concurrency=1,"
        " priority=-4",
        "role: 'entry'",
        "concurrency: 2, maxRuns: 3, concurrencyKey: '/tenant', keyConcurrency: 1, priority: -4",
    ),
    "triggers": (
        "entry=True, triggers={'mode': 'manual', 'subscribe': ['signup.form',"
        " {'name': 'user.created', 'mode': 'auto'}, 'signup.form'], 'define': {'name':"
        " 'signup.form', 'type': 'manual', 'display_name': 'Sign up', 'config': {'schema':"
        " {'type': 'object', 'required': ['email']}}}}",
        "role: 'entry', triggers: { mode: 'manual', subscribe: ['signup.form',"
        " { name: 'user.created', mode: 'auto' }, 'signup.form'], define: { name:"
        " 'signup.form', type: 'manual', displayName: 'Sign up', config: { schema:"
        " { type: 'object', required: ['email'] } } } }",
        "",
    ),
}


def python_file(name: str, arguments: str) -> str:
    return (
        "from flowhost_worker import Await, step\n\n"
        "async def hook_a(data, ctx):\n    pass\n\n"
        "async def hook_b(data, ctx):\n    pass\n\n"
        f"@step(flow='twins', name='{name}', {arguments})\n"
        "async def handler(data, ctx):\n    return data\n"
    )


def node_file(name: str, flow_fields: str, top_fields: str) -> str:
    rest = f", {top_fields}" if top_fields else ""
    config = f"{{ flow: {{ name: 'twins', step: '{name}', {flow_fields} }}{rest} }}"
    return (
        f"export const config = {config}\n"
        "export async function hook_a(data, ctx) {}\n"
        "export async function hook_b(data, ctx) {}\n"
        "export default async (input, ctx) => input\n"
    )


def pairs(text: str) -> Any:
    """The JSON with every object as a list of (key, value) pairs: equal means same order too."""
    return json.loads(text, object_pairs_hook=list)


def described(argv: list[str], root: Path) -> dict[str, Any]:
    output = subprocess.run([*argv, str(root)], capture_output=True, text=True, check=True)
    steps = pairs(output.stdout)[0][1]
    found = {}
    for step in steps:
        entry = dict(step)
        found[dict(entry["config"])["name"]] = (entry["config"], entry["hooks"])
    assert pairs(output.stdout)[1] == ("problems", []), output.stdout
    return found


def test_both_sdks_write_the_same_canonical_config_in_the_same_order(tmp_path: Path) -> None:
    python_dir, node_dir = tmp_path / "py", tmp_path / "js"
    python_dir.mkdir()
    node_dir.mkdir()
    for name, (arguments, flow_fields, top_fields) in TWINS.items():
        (python_dir / f"{name}.py").write_text(python_file(name, arguments))
        (node_dir / f"{name}.mjs").write_text(node_file(name, flow_fields, top_fields))
    from_python = described([sys.executable, "-m", "flowhost_worker.describe"], python_dir)
    from_node = described(RuntimeCommands().node_script("describe.js"), node_dir)
    assert sorted(from_python) == sorted(from_node) == sorted(TWINS)
    for name in TWINS:
        assert from_python[name] == from_node[name], name
    webhook_config, webhook_hooks = from_python["webhook"]
    assert webhook_hooks == [("missing_hook", False)]
    assert dict(dict(webhook_config)["awaitBefore"])["method"] == "PATCH"
