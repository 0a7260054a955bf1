"""State as events: a run's state as of any event id equals what the projection held then."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowhost.errors import InvalidInputError
from flowhost.store import reads
from flowhost.store.events import events_of_run
from flowhost.store.state_history import state_at
from tests.support.engine import running_host, start, wait_for_run, write_functions

STATEFUL = """
from flowhost_worker import step

@step(flow="stateful", name="first", entry=True, emits=["first.done"])
async def first(data, ctx):
    await ctx.state.set("owner", data["owner"])
    await ctx.state.set("count", 1)
    await ctx.state.set("scratch", {"tmp": True})
    await ctx.emit("first.done", {})

@step(flow="stateful", name="second", subscribes=["first.done"])
async def second(events, ctx):
    await ctx.state.set("count", await ctx.state.get("count") + 1)
    await ctx.state.delete("scratch")
    await ctx.state.set("done", [ctx.run_id])
"""


async def test_state_at_any_event_replays_the_state_events_up_to_it(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path, {"stateful.py": STATEFUL})
    async with running_host(project_dir, database_url) as project:
        # Two runs at once, writing the same keys: each sees only its own.
        ada = await start(project, "stateful", {"owner": "ada"})
        bob = await start(project, "stateful", {"owner": "bob"})
        for run_id in (ada, bob):
            assert (await wait_for_run(project, run_id))["status"] == "completed"
        async with project.database.connection() as conn:
            events = {run_id: await events_of_run(conn, run_id) for run_id in (ada, bob)}
            projection = {run_id: await reads.state_of_run(conn, run_id) for run_id in (ada, bob)}
            last = {run_id: events[run_id][-1].id for run_id in (ada, bob)}
            at_end = {run_id: await state_at(conn, run_id, last[run_id]) for run_id in (ada, bob)}
            ada_state = [e for e in events[ada] if e.type.startswith("state.")]
            before_any = await state_at(conn, ada, events[ada][0].id)
            after_first_set = await state_at(conn, ada, ada_state[0].id)
            after_first_step = await state_at(conn, ada, ada_state[2].id)
            after_delete = await state_at(conn, ada, ada_state[4].id)
            # Bob's events between two of Ada's do not leak into Ada's state.
            beyond = await state_at(conn, ada, max(last.values()) + 1000)
            with pytest.raises(InvalidInputError, match="event id must be 1 or more"):
                await state_at(conn, ada, 0)

    for run_id, owner in ((ada, "ada"), (bob, "bob")):
        assert projection[run_id] == {"owner": owner, "count": 2, "done": [str(run_id)]}
        assert at_end[run_id] == projection[run_id]
    assert [e.type for e in ada_state] == ["state.set"] * 4 + ["state.delete", "state.set"]
    assert before_any == {}
    assert after_first_set == {"owner": "ada"}
    assert after_first_step == {"owner": "ada", "count": 1, "scratch": {"tmp": True}}
    assert after_delete == {"owner": "ada", "count": 2}
    assert beyond == projection[ada]
