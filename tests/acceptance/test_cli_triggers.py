"""`flowhost trigger list|show|fire|replay|retire` as a user runs them, beside a running host:
output, JSON, field errors and exit codes."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

from flowhost.store import reads
from tests.support.cli import flowhost
from tests.support.engine import running_host, wait_for_run, write_functions

FUNCTIONS = {
    "signups.py": """
from flowhost_worker import step

@step(
    flow="signups",
    entry=True,
    isolation="inprocess",
    triggers={
        "define": {
            "name": "signup.form",
            "type": "manual",
            "description": "Sign a user up by hand",
            "config": {"schema": {"type": "object", "required": ["email"],
                                  "properties": {"email": {"type": "string"}}}},
        },
        "subscribe": "signup.form",
    },
)
async def welcome(data, ctx):
    return {"welcomed": data["email"]}
""",
    "review.py": """
from flowhost_worker import step

@step(flow="review", entry=True, isolation="inprocess",
      triggers={"subscribe": {"name": "signup.form", "mode": "manual"}})
async def review(data, ctx):
    return data
""",
}


async def cli(project: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    # In a thread: the host serving the runs shares this event loop.
    return await asyncio.to_thread(flowhost, *args, project=project, database_url=database_url)


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_the_trigger_commands(tmp_path: Path, database_url: str) -> None:
    project_dir = write_functions(tmp_path, FUNCTIONS)
    async with running_host(project_dir, database_url) as project:
        async with asyncio.timeout(30):
            while (
                len(as_json(await cli(project_dir, database_url, "trigger", "list", "--json"))) < 1
            ):
                await asyncio.sleep(0.05)

        fired = as_json(
            await cli(
                project_dir, database_url, "trigger", "fire", "signup.form",
                "--input", '{"email": "ada@example.com"}', "--json",
            )
        )  # fmt: skip
        assert [run["flow"] for run in fired["runs"]] == ["signups"] and not fired["duplicate"]
        run = await wait_for_run(project, uuid.UUID(fired["runs"][0]["runId"]))
        assert run["status"] == "completed" and run["result"] == {"welcomed": "ada@example.com"}

        text = await cli(
            project_dir, database_url, "trigger", "fire", "signup.form", "--flow", "review",
            "--input", '{"email": "bob@example.com"}',
        )  # fmt: skip
        assert text.returncode == 0, text.stderr
        found = re.match(r"trigger signup.form fired \(event (\d+)\)", text.stdout)
        assert found is not None, text.stdout
        second = int(found[1])
        assert "started: flow review" in text.stdout

        refused = await cli(
            project_dir, database_url, "trigger", "fire", "signup.form", "--input", '{"email": 3}'
        )
        assert refused.returncode == 2
        assert "does not match the schema of trigger 'signup.form'" in refused.stderr
        assert "  /email: 3 is not of type 'string'" in refused.stderr

        listed = as_json(await cli(project_dir, database_url, "trigger", "list", "--json"))
        assert [(t["name"], t["stats"]["totalFires"]) for t in listed] == [("signup.form", 2)]
        table = await cli(project_dir, database_url, "trigger", "list")
        assert "signup.form" in table.stdout and "review (manual)" in table.stdout

        replayed = as_json(
            await cli(project_dir, database_url, "trigger", "replay", "signup.form", "--last", "1",
                      "--json")
        )  # fmt: skip
        # The last fire (into review) again, into the flows subscribed in mode auto.
        assert replayed["replayed"] == [second]
        assert [[r["flow"] for r in f["runs"]] for f in replayed["fires"]] == [["signups"]]

        shown = as_json(
            await cli(project_dir, database_url, "trigger", "show", "signup.form", "--json")
        )
        assert shown["description"] == "Sign a user up by hand"
        assert shown["stats"]["totalFires"] == 3
        assert [e["type"] for e in shown["events"]][-2:] == ["trigger.fired", "trigger.replayed"]

        retired = await cli(
            project_dir, database_url, "trigger", "retire", "signup.form", "--reason", "moved"
        )
        assert retired.returncode == 0 and "retired (moved)" in retired.stdout
        again = await cli(project_dir, database_url, "trigger", "fire", "signup.form")
        assert again.returncode == 6 and "is retired" in again.stderr
        unknown = await cli(project_dir, database_url, "trigger", "show", "nope")
        assert unknown.returncode == 3 and "no trigger 'nope'" in unknown.stderr

        async with project.database.connection() as conn:
            runs = await reads.list_runs(conn, limit=10)
    assert sorted(r["flow"] for r in runs) == ["review", "signups", "signups"]
