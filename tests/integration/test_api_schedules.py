"""`/api/schedules`: a schedule trigger read, edited, enabled and disabled over HTTP."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from tests.support.api import assert_problem, serving_api
from tests.support.engine import write_functions

FLOWS = """
from flowhost_worker import step

@step(flow="report", entry=True, isolation="inprocess")
async def report(data, ctx):
    return data
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return write_functions(tmp_path / "p", {"flows.py": FLOWS})


async def test_schedule_routes_read_edit_enable_and_disable(
    project_dir: Path, database_url: str
) -> None:
    async with serving_api(project_dir, database_url) as (_, client):
        created = await client.post(
            "/api/triggers",
            json={
                "name": "nightly",
                "type": "schedule",
                "config": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"},
                "subscribe": {"report": "auto"},
            },
        )
        assert created.status_code == 201, created.text
        version = created.json()["version"]

        listed = (await client.get("/api/schedules")).json()
        assert [s["name"] for s in listed["items"]] == ["nightly"]
        shown = (await client.get("/api/schedules/nightly")).json()
        assert shown["cron"] == "0 3 * * *" and shown["timezone"] == "Europe/Berlin"
        assert shown["enabled"] is True and shown["overlap"] == "skip"

        upcoming = (await client.get("/api/schedules/nightly/next", params={"count": 3})).json()
        times = [datetime.fromisoformat(t) for t in upcoming["times"]]
        assert len(times) == 3 and times == sorted(times)
        assert all(t.utcoffset() is not None for t in times)
        assert {(t.hour, t.minute) for t in times} == {(3, 0)}  # in the schedule's zone
        assert (await client.get("/api/schedules/nightly/fires")).json() == []
        assert (await client.get("/api/schedules/nightly/lag")).json()["fires"] == 0

        edited = await client.patch(
            "/api/schedules/nightly", json={"version": version, "cron": "30 4 * * *"}
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["cron"] == "30 4 * * *" and edited.json()["version"] > version
        stale = await client.patch("/api/schedules/nightly", json={"version": version})
        assert_problem(stale, 409)
        bad = await client.patch(
            "/api/schedules/nightly", json={"version": edited.json()["version"], "cron": "nope"}
        )
        assert_problem(bad, 422)

        disabled = await client.post("/api/schedules/nightly/disable")
        assert disabled.status_code == 200 and disabled.json()["enabled"] is False
        enabled = await client.post("/api/schedules/nightly/enable")
        assert enabled.status_code == 200 and enabled.json()["enabled"] is True

        assert_problem(await client.get("/api/schedules/absent"), 404)
        assert_problem(await client.post("/api/schedules/absent/enable"), 404)
        assert_problem(await client.get("/api/schedules/nightly/next?count=0"), 422)
