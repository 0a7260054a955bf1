"""Schedule triggers on a real engine and database: a host's scheduler fires them on time with
their lag recorded, applies the overlap and catch-up policies, and picks up changes made at
runtime."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flowhost.cron import CronSchedule
from flowhost.db.database import Database
from flowhost.errors import (
    InvalidInputError,
    TriggerConfigError,
    TriggerConflictError,
    TriggerNotFoundError,
    TriggerRetiredError,
)
from flowhost.metrics import REGISTRY
from flowhost.store import reads
from flowhost.store import schedules as schedules_store
from flowhost.triggers import schedule_service, service
from flowhost.triggers.declarations import TriggerSpec
from tests.support.engine import running_host, write_functions

BERLIN = ZoneInfo("Europe/Berlin")
TICKS = """
from flowhost_worker import step

@step(flow="ticks", entry=True, isolation="inprocess",
      triggers={"define": {"name": "every.second", "type": "schedule",
                           "config": {"cron": "* * * * * *", "overlap": "allow"}},
                "subscribe": "every.second"})
async def tick(data, ctx):
    return data
"""


async def fires_of(database: Database, name: str) -> list[dict[str, Any]]:
    async with database.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT ts, data FROM flowhost.trigger_events"
                " WHERE trigger = %s AND type = 'trigger.fired' ORDER BY id",
                (name,),
            )
        ).fetchall()
    return [{"ts": row["ts"], **row["data"]} for row in rows]


async def wait_for_fires(
    database: Database, name: str, count: int, timeout: float = 30
) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while len(found := await fires_of(database, name)) < count:
            await asyncio.sleep(0.05)
    return found


async def schedule_row(database: Database, name: str) -> dict[str, Any]:
    async with database.connection() as conn:
        row = await (
            await conn.execute("SELECT * FROM flowhost.schedules WHERE trigger = %s", (name,))
        ).fetchone()
    assert row is not None
    return dict(row)


def planned(fire: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(fire["details"]["planned_at"])


async def test_a_per_second_schedule_fires_each_second_once_with_its_lag(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path, {"ticks.py": TICKS})
    observed = {"schedule": "every.second"}
    before = REGISTRY.get_sample_value("flowhost_schedule_tick_lag_seconds_count", observed) or 0
    async with running_host(project_dir, database_url) as project:
        fires = await wait_for_fires(project.database, "every.second", 3)
        # The fires' lag at commit goes to the Prometheus histogram too.
        counted = REGISTRY.get_sample_value("flowhost_schedule_tick_lag_seconds_count", observed)
        assert counted is not None and counted - before >= 3
        row = await schedule_row(project.database, "every.second")
        async with project.database.connection() as conn:
            runs = {r["id"]: r for r in await reads.list_runs(conn, flow="ticks", limit=100)}
    times = [planned(fire) for fire in fires]
    assert times == sorted(set(times))
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(times))
    for fire in fires:
        assert fire["source"] == "schedule"
        assert fire["delivery_key"] == f"every.second@{fire['details']['planned_at']}"
        assert planned(fire).microsecond == 0
        # Fired after its planned time, and not long after (an idle host).
        assert 0 <= fire["details"]["lag_ms"] < 1000
        assert fire["ts"] >= planned(fire)
        [run] = fire["runs"]
        assert run["flow"] == "ticks" and uuid.UUID(run["run_id"]) in runs
        assert fire["payload"] == {
            "schedule": "every.second",
            "planned_at": fire["details"]["planned_at"],
        }
    assert row["lag_fires"] >= 3 and row["lag_max_ms"] < 1000
    assert row["next_fire"] > times[-1]
    assert row["next_fire"].tzinfo is not None and row["next_fire"] > datetime.now(UTC) - timedelta(
        seconds=2
    )


# -- overlap --------------------------------------------------------------------------------

SLOW_STEP_SECONDS = 2.2


def slow_flow(policy: str) -> str:
    """A flow whose runs last SLOW_STEP_SECONDS, started every second by schedule `policy`."""
    return f"""
import asyncio
import itertools
from flowhost_worker import step

@step(flow="slow_{policy}", entry=True, isolation="inprocess",
      triggers={{"define": {{"name": "{policy}", "type": "schedule",
                            "config": {{"cron": "* * * * * *", "overlap": "{policy}"}}}},
                "subscribe": "{policy}"}})
async def slow(data, ctx):
    await asyncio.sleep({SLOW_STEP_SECONDS})
    return data
"""


async def trigger_events(database: Database, name: str) -> list[dict[str, Any]]:
    async with database.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT type, data FROM flowhost.trigger_events WHERE trigger = %s"
                " AND type NOT IN ('trigger.registered', 'subscription.added') ORDER BY id",
                (name,),
            )
        ).fetchall()
    return [dict(row) for row in rows]


async def runs_by_id(database: Database, flow: str) -> dict[uuid.UUID, dict[str, Any]]:
    async with database.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT id, status, created_at, finished_at FROM flowhost.runs WHERE flow = %s",
                (flow,),
            )
        ).fetchall()
    return {row["id"]: dict(row) for row in rows}


def run_of(fire: dict[str, Any]) -> uuid.UUID:
    [run] = fire["runs"]
    return uuid.UUID(run["run_id"])


def contiguous(times: list[datetime]) -> bool:
    ordered = sorted(times)
    return ordered == [ordered[0] + timedelta(seconds=n) for n in range(len(ordered))]


async def test_overlap_policies_with_runs_longer_than_the_interval(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    policies = ("allow", "skip", "queue", "replace")
    project_dir = write_functions(tmp_path, {f"{p}.py": slow_flow(p) for p in policies})
    async with running_host(project_dir, database_url):
        # Long enough for each policy to meet overlapping runs a few times.
        await wait_for_fires(database, "allow", 7)
    # The host stopped (its runs ended first): nothing moves any more.
    events = {p: await trigger_events(database, p) for p in policies}
    runs = {p: await runs_by_id(database, f"slow_{p}") for p in policies}
    rows = {p: await schedule_row(database, p) for p in policies}
    fired = {p: [e["data"] for e in events[p] if e["type"] == "trigger.fired"] for p in policies}

    def overlaps(policy: str) -> int:
        spans = sorted(
            (r["created_at"], r["finished_at"]) for r in runs[policy].values() if r["finished_at"]
        )
        return sum(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))

    # allow: a run per planned time, overlapping.
    assert [e["type"] for e in events["allow"]] == ["trigger.fired"] * len(fired["allow"])
    assert contiguous([planned(f) for f in fired["allow"]])
    assert overlaps("allow") >= 3

    # skip: a planned time with a live run is skipped (and said so); runs never overlap.
    skipped = [e["data"] for e in events["skip"] if e["type"] == "schedule.skipped"]
    assert len(skipped) >= 2 and rows["skip"]["skipped"] == len(skipped)
    assert {s["reason"] for s in skipped} == {"overlap"}
    assert contiguous(
        [planned(f) for f in fired["skip"]]
        + [datetime.fromisoformat(s["planned_at"]) for s in skipped]
    )
    assert overlaps("skip") == 0 and len(fired["skip"]) >= 2

    # queue: a planned time with a live run waits, and fires once the run ended; none is lost.
    queued_fires = [f for f in fired["queue"] if f["details"].get("queued")]
    assert len(queued_fires) >= 2
    assert all(f["details"]["lag_ms"] > 1000 for f in queued_fires)
    waiting = [
        datetime.fromisoformat(e["data"]["planned_at"])
        for e in events["queue"]
        if e["type"] == "schedule.queued"
    ]
    assert {planned(f) for f in queued_fires} <= set(waiting)
    assert contiguous([planned(f) for f in fired["queue"]] + list(rows["queue"]["queued"]))
    assert sorted(waiting) == sorted(
        [planned(f) for f in queued_fires] + list(rows["queue"]["queued"])
    )
    assert overlaps("queue") == 0 and rows["queue"]["skipped"] == 0
    # Queued fires come in planned order, each after the previous run ended.
    assert [planned(f) for f in fired["queue"]] == sorted(planned(f) for f in fired["queue"])

    # replace: each planned time fires and cancels the run before it, which was still live.
    assert contiguous([planned(f) for f in fired["replace"]])
    replacing = [f for f in fired["replace"] if f["details"].get("replaced")]
    assert len(replacing) >= 3
    for before, fire in itertools.pairwise(fired["replace"]):
        if fire["details"].get("replaced"):
            assert fire["details"]["replaced"] == [str(run_of(before))]
            assert runs["replace"][run_of(before)]["status"] == "canceled"
    async with database.connection() as conn:
        [canceled] = await (
            await conn.execute(
                "SELECT data FROM flowhost.events WHERE type = 'flow.canceled' AND run_id = %s",
                (run_of(fired["replace"][0]),),
            )
        ).fetchall()
    assert canceled["data"]["by"] == "schedule" and canceled["data"]["schedule"] == "replace"


# -- catch-up -------------------------------------------------------------------------------

NIGHTLY = """
from flowhost_worker import step

@step(flow="nightly", entry=True, isolation="inprocess",
      triggers={"define": [{"name": f"nightly.{policy}", "type": "schedule",
                            "config": {"cron": "0 0 * * *", "catchup": policy,
                                       "overlap": "allow"}}
                           for policy in ("skip", "once", "all")],
                "subscribe": ["nightly.skip", "nightly.once", "nightly.all"]})
async def nightly(data, ctx):
    return data
"""


async def wait_until_computed(database: Database, names: list[str]) -> None:
    async with asyncio.timeout(30):
        while True:
            async with database.connection() as conn:
                rows = await (
                    await conn.execute(
                        "SELECT count(*) AS n FROM flowhost.schedules"
                        " WHERE trigger = ANY (%s) AND next_fire IS NOT NULL",
                        (names,),
                    )
                ).fetchone()
            if rows is not None and rows["n"] == len(names):
                return
            await asyncio.sleep(0.02)


async def test_catch_up_after_every_host_was_down(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    """Every host stops; midnights pass (here: next_fire is moved days back, as if they had);
    a host starts again and fires none of the missed midnights (skip), the latest (once), or
    all of them up to the latest 100 (all)."""
    names = ["nightly.skip", "nightly.once", "nightly.all"]
    project_dir = write_functions(tmp_path, {"nightly.py": NIGHTLY})
    async with running_host(project_dir, database_url, schedule_grace=1.0):
        await wait_until_computed(database, names)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = {"nightly.skip": 5, "nightly.once": 5, "nightly.all": 150}
    async with database.connection() as conn:
        for name, days in since.items():
            await conn.execute(
                "UPDATE flowhost.schedules SET next_fire = %s WHERE trigger = %s",
                (today - timedelta(days=days), name),
            )
    async with running_host(project_dir, database_url, schedule_grace=1.0):
        await wait_for_fires(database, "nightly.all", 100)
        async with asyncio.timeout(30):  # each schedule handled: next_fire is tomorrow
            while [
                r
                for r in [await schedule_row(database, n) for n in names]
                if r["next_fire"] <= today
            ]:
                await asyncio.sleep(0.02)
    fired = {name: await fires_of(database, name) for name in names}
    missed = {}
    for name in names:
        events = await trigger_events(database, name)
        missed[name] = [e["data"] for e in events if e["type"] == "schedule.missed"]
    rows = {name: await schedule_row(database, name) for name in names}
    midnights = [today - timedelta(days=n) for n in range(150, -1, -1)]

    assert fired["nightly.skip"] == []
    assert missed["nightly.skip"] == [
        {
            "catchup": "skip",
            "count": 6,
            "more": False,
            "first": midnights[-6].isoformat(),
            "last": today.isoformat(),
        }
    ]
    [once] = fired["nightly.once"]
    assert planned(once) == today and once["details"]["catchup"] is True
    assert missed["nightly.once"][0]["count"] == 5
    assert [planned(f) for f in fired["nightly.all"]] == midnights[-100:]
    assert all(f["details"]["catchup"] for f in fired["nightly.all"])
    assert missed["nightly.all"][0]["count"] == 51
    assert missed["nightly.all"][0]["last"] == midnights[50].isoformat()
    assert [rows[n]["missed"] for n in names] == [6, 5, 51]
    # Caught-up fires are late on purpose: they are not in the schedule's lag figures.
    assert [rows[n]["lag_fires"] for n in names] == [0, 0, 0]
    for row in rows.values():
        assert row["next_fire"] == today + timedelta(days=1)


# -- runtime control ------------------------------------------------------------------------


async def database_clock(database: Database) -> datetime:
    async with database.connection() as conn:
        return await schedules_store.database_now(conn)


async def current_view(database: Database, name: str) -> schedule_service.ScheduleView:
    async with database.connection() as conn:
        return await schedule_service.get_schedule(conn, name)


async def test_enable_disable_and_edit_at_runtime_are_followed_by_the_running_host(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    project_dir = write_functions(tmp_path, {"ticks.py": TICKS})
    name = "every.second"
    async with running_host(project_dir, database_url):
        await wait_for_fires(database, name, 2)
        async with database.transaction() as conn:
            before = await schedule_service.get_schedule(conn, name)
            disabled = await schedule_service.disable_schedule(conn, name, version=before.version)
        stopped_at = await database_clock(database)
        assert (disabled.enabled, disabled.next_fire) == (False, None)
        assert disabled.version == before.version + 1
        count = len(await fires_of(database, name))
        await asyncio.sleep(2.5)  # two planned times pass: nothing fires
        assert len(await fires_of(database, name)) == count
        assert all(fire["ts"] < stopped_at for fire in await fires_of(database, name))

        # An edit made against an older version is refused.
        async with database.transaction() as conn:
            with pytest.raises(TriggerConflictError) as conflict:
                await schedule_service.enable_schedule(conn, name, version=before.version)
        assert conflict.value.details["version"] == disabled.version

        async with database.transaction() as conn:
            enabled = await schedule_service.enable_schedule(conn, name)
        assert enabled.enabled and enabled.next_fire is not None
        resumed = await wait_for_fires(database, name, count + 2)
        assert all(planned(f) > stopped_at for f in resumed[count:])

        # A new cron: every other second, from the next even second on.
        async with database.transaction() as conn:
            edited = await schedule_service.update_schedule(
                conn, name, version=enabled.version, cron="*/2 * * * * *", payload={"n": 1}
            )
            upcoming = await schedule_service.next_fires(conn, name, 3)
        assert edited.cron == "*/2 * * * * *" and edited.version == enabled.version + 1
        assert edited.next_fire is not None and edited.next_fire.second % 2 == 0
        assert [t.second % 2 for t in upcoming] == [0, 0, 0]
        assert upcoming == CronSchedule("*/2 * * * * *").next_after(
            upcoming[0] - timedelta(seconds=1), count=3
        )
        edited_at = await database_clock(database)
        after_edit = (await wait_for_fires(database, name, count + 4))[count + 2 :]
        later = [f for f in after_edit if planned(f) > edited_at]
        assert later and all(planned(f).second % 2 == 0 for f in later)
        assert all(f["payload"] == {"n": 1} for f in later)

        async with database.transaction() as conn:
            await schedule_service.disable_schedule(conn, name)
        events = await trigger_events(database, name)
    updates = [e["data"]["changes"] for e in events if e["type"] == "trigger.updated"]
    assert updates[:2] == [
        {"enabled": {"from": True, "to": False}},
        {"enabled": {"from": False, "to": True}},
    ]
    assert set(updates[2]) == {"config"} and updates[3] == {"enabled": {"from": True, "to": False}}

    # A host start applies the function configs again (the cron and payload come back), but a
    # schedule disabled at runtime stays disabled: the config's `enabled` did not change.
    async with running_host(project_dir, database_url):
        async with asyncio.timeout(30):  # the host's start synced the configs
            while (view := await current_view(database, name)).cron != "* * * * * *":
                await asyncio.sleep(0.02)
        assert "payload" not in view.config
        count = len(await fires_of(database, name))
        await asyncio.sleep(1.5)
        assert len(await fires_of(database, name)) == count
    async with database.connection() as conn:
        view = await schedule_service.get_schedule(conn, name)
    assert not view.enabled and view.next_fire is None and view.computed


async def test_bad_schedules_are_refused_with_the_field_and_unknown_ones_not_found(
    database: Database,
) -> None:
    async with database.transaction() as conn:
        with pytest.raises(TriggerConfigError) as bad_zone:
            await schedule_service.create_schedule(conn, "s", cron="@daily", timezone="Moon/Base")
        assert [e["pointer"] for e in bad_zone.value.errors] == ["/config/timezone"]
        view = await schedule_service.create_schedule(
            conn, "s", cron="0 9 * * MON-FRI", timezone="Europe/Berlin", subscribe={"f": "auto"}
        )
        assert view.computed and view.enabled and view.next_fire is not None
        assert view.next_fire.astimezone(BERLIN).hour == 9
        with pytest.raises(TriggerConfigError) as bad_cron:
            await schedule_service.update_schedule(conn, "s", version=view.version, cron="0 9 * *")
        assert [e["pointer"] for e in bad_cron.value.errors] == ["/config/cron"]
        with pytest.raises(TriggerConfigError) as bad_policy:
            await schedule_service.update_schedule(
                conn, "s", version=view.version, overlap="later", catchup="never"
            )
        assert [e["pointer"] for e in bad_policy.value.errors] == [
            "/config/overlap",
            "/config/catchup",
        ]
        with pytest.raises(TriggerConfigError) as through_registry:
            await service.create_trigger(
                conn, TriggerSpec("t", "schedule", {"cron": "* * * * *", "every": 5})
            )
        assert through_registry.value.errors == [
            {
                "pointer": "/config/every",
                "message": "unknown key of a schedule (known: cron, timezone, overlap, "
                "catchup, enabled, payload, schema)",
            }
        ]
        await service.create_trigger(conn, TriggerSpec("an.event", "event"))
        with pytest.raises(TriggerNotFoundError, match="is a event trigger, not a schedule"):
            await schedule_service.enable_schedule(conn, "an.event")
        with pytest.raises(TriggerNotFoundError, match="no schedule 'nope'"):
            await schedule_service.get_schedule(conn, "nope")
        with pytest.raises(InvalidInputError, match="count must be from 1 to 1000"):
            await schedule_service.next_fires(conn, "s", 0)
        # Berlin's spring forward, from the Rust cron: 02:30 fires at 03:00, the end of the gap.
        await schedule_service.update_schedule(conn, "s", version=view.version, cron="30 2 * * *")
        nights = await schedule_service.next_fires(
            conn, "s", 3, after=datetime(2024, 3, 30, 12, tzinfo=UTC)
        )
        assert [n.isoformat() for n in nights] == [
            "2024-03-31T03:00:00+02:00",
            "2024-04-01T02:30:00+02:00",
            "2024-04-02T02:30:00+02:00",
        ]
        await service.retire_trigger(conn, "s")
        retired = await schedule_service.disable_schedule(conn, "s")
        assert retired.next_fire is None
        with pytest.raises(TriggerRetiredError):
            await schedule_service.enable_schedule(conn, "s")


async def test_the_scheduler_goes_on_after_postgres_drops_the_hosts_connections(
    tmp_path: Path, database_url: str, database: Database
) -> None:
    """Every connection of the host is cut (a restart, a failover): the host reconnects and its
    scheduler fires the planned times of the gap late (within the grace), none twice. (The
    host's reconnect backs off while its pool hands out connections the cut killed, which can
    take several seconds: the grace here covers that.)"""
    project_dir = write_functions(tmp_path, {"ticks.py": TICKS})
    name = "every.second"
    async with running_host(project_dir, database_url, schedule_grace=60.0):
        await wait_for_fires(database, name, 2)
        async with database.connection() as conn:
            cut = await (
                await conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) AS n, clock_timestamp() AS at"
                    " FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid()"
                )
            ).fetchone()
        assert cut is not None and cut["n"] >= 2
        async with asyncio.timeout(30):
            while not [
                f
                for f in await fires_of(database, name)
                if planned(f) > cut["at"] + timedelta(seconds=2)
            ]:
                await asyncio.sleep(0.05)
    fires = await fires_of(database, name)
    times = [planned(f) for f in fires]
    assert len(times) == len(set(times)) and contiguous(times)
