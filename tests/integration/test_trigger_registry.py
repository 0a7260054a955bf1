"""The trigger registry and firing, on a real Postgres: a fire starts runs in the subscribed
flows and records itself in one transaction; the registry's stream, figures, versions and
delivery keys hold under concurrency."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from flowhost.db.database import Database
from flowhost.db.queries import QUERIES
from flowhost.errors import (
    InvalidInputError,
    SubscriptionNotFoundError,
    TriggerConfigError,
    TriggerConflictError,
    TriggerInputError,
    TriggerNotFoundError,
    TriggerRetiredError,
)
from flowhost.project import Project, open_project
from flowhost.settings import load_settings
from flowhost.store import triggers as store
from flowhost.store.events import events_of_run
from flowhost.triggers import service
from flowhost.triggers.declarations import TriggerSpec
from flowhost.triggers.firing import fire_trigger
from flowhost.triggers.replay import replay_trigger
from tests.support.engine import write_functions

FUNCTIONS = {
    "flows.py": """
from flowhost_worker import step

@step(flow="greet", entry=True, isolation="inprocess")
async def greet(data, ctx):
    return data

@step(flow="audit", entry=True, isolation="inprocess")
async def audit(data, ctx):
    return data

@step(flow="review", entry=True, isolation="inprocess")
async def review(data, ctx):
    return data
""",
}


@contextlib.asynccontextmanager
async def project_of(tmp_path: Path, database_url: str) -> AsyncIterator[Project]:
    write_functions(tmp_path, FUNCTIONS)
    settings = load_settings(tmp_path, environ={"DATABASE_URL": database_url})
    async with open_project(settings) as project:
        yield project


@pytest.fixture
async def project(tmp_path: Path, database_url: str) -> AsyncIterator[Project]:
    async with project_of(tmp_path, database_url) as opened:
        yield opened


async def create(
    database: Database, name: str, kind: str = "manual", **options: Any
) -> store.TriggerView:
    subscribe = options.pop("subscribe", {})
    async with database.transaction() as conn:
        return await service.create_trigger(
            conn, TriggerSpec(name, kind, **options), subscribe=subscribe
        )


async def count(database: Database, sql: Any, *params: Any) -> int:
    async with database.connection() as conn:
        row = await (await conn.execute(sql, params)).fetchone()
    assert row is not None
    return int(next(iter(row.values())))


async def test_a_fire_starts_a_run_in_each_auto_subscribed_flow(project: Project) -> None:
    database = project.database
    await create(
        database,
        "signup",
        subscribe={"greet": "auto", "audit": "auto", "review": "manual"},
        display_name="Sign-up",
    )
    async with database.transaction() as conn:
        fired = await fire_trigger(
            conn, "signup", {"user": "ada"}, source="api", served=project.catalog.flows
        )
    assert sorted(run.flow for run in fired.runs) == ["audit", "greet"]
    assert not fired.duplicate and not fired.skipped

    async with database.connection() as conn:
        runs = {
            row["flow"]: row
            for row in await (
                await conn.execute("SELECT id, flow, input, status FROM flowhost.runs")
            ).fetchall()
        }
        started = (await events_of_run(conn, runs["greet"]["id"]))[0]
        stream = await store.trigger_events(conn, "signup")
        view = await service.get_trigger(conn, "signup")
    assert set(runs) == {"greet", "audit"}
    assert runs["greet"]["input"] == {"user": "ada"}
    assert started.type == "flow.started"
    assert started.data["trigger"] == {
        "name": "signup",
        "type": "manual",
        "fire_id": str(fired.fire_id),
        "source": "api",
        "depth": 0,
    }
    assert [e.type for e in stream] == [
        "trigger.registered",
        "subscription.added",
        "subscription.added",
        "subscription.added",
        "trigger.fired",
    ]
    fired_event = stream[-1]
    assert fired_event.id == fired.event_id
    assert fired_event.data["payload"] == {"user": "ada"}
    assert {r["flow"]: r["run_id"] for r in fired_event.data["runs"]} == {
        flow: str(row["id"]) for flow, row in runs.items()
    }
    assert view.total_fires == 1 and view.last_fired_at == fired.fired_at
    assert view.subscribers == 3 and view.version == 1 and view.display_name == "Sign-up"


async def test_manual_subscriptions_start_only_when_the_flow_is_named(project: Project) -> None:
    await create(project.database, "signup", subscribe={"greet": "auto", "review": "manual"})
    async with project.database.transaction() as conn:
        fired = await fire_trigger(
            conn, "signup", {}, source="cli", flows=["review"], served=project.catalog.flows
        )
        assert [run.flow for run in fired.runs] == ["review"]
        with pytest.raises(InvalidInputError, match="'audit' is not subscribed"):
            await fire_trigger(conn, "signup", {}, source="cli", flows=["audit"])


async def test_a_rolled_back_fire_leaves_no_run_no_event_and_no_count(project: Project) -> None:
    database = project.database
    await create(database, "signup", subscribe={"greet": "auto"})

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with database.transaction() as conn:
            fired = await fire_trigger(
                conn, "signup", {"n": 1}, source="api", served=project.catalog.flows
            )
            assert len(fired.runs) == 1
            raise Abort
    assert await count(database, "SELECT count(*) FROM flowhost.runs") == 0
    assert await count(database, "SELECT count(*) FROM flowhost.events") == 0
    assert (
        await count(
            database, "SELECT count(*) FROM flowhost.trigger_events WHERE type = 'trigger.fired'"
        )
        == 0
    )
    assert await count(database, "SELECT count(*) FROM pgqueuer") == 0
    async with database.connection() as conn:
        assert (await service.get_trigger(conn, "signup")).total_fires == 0


async def test_unknown_and_retired_triggers_do_not_fire(project: Project) -> None:
    database = project.database
    await create(database, "signup", subscribe={"greet": "auto"})
    async with database.transaction() as conn:
        with pytest.raises(TriggerNotFoundError):
            await fire_trigger(conn, "nope", {}, source="api")
    async with database.transaction() as conn:
        retired = await service.retire_trigger(conn, "signup", reason="replaced")
        again = await service.retire_trigger(conn, "signup")
    assert retired.status == "retired" and retired.retired_reason == "replaced"
    assert again.version == retired.version  # retiring twice changes nothing
    async with database.transaction() as conn:
        with pytest.raises(TriggerRetiredError, match="retired"):
            await fire_trigger(conn, "signup", {}, source="api", served=project.catalog.flows)
        with pytest.raises(TriggerRetiredError):
            await service.subscribe(conn, "signup", "audit")
    async with database.connection() as conn:
        stream = await store.trigger_events(conn, "signup", types=["trigger.retired"])
    assert len(stream) == 1
    assert stream[0].data["reason"] == "replaced"
    assert stream[0].data["finalStats"] == {"totalFires": 0, "lastFiredAt": None, "subscribers": 1}
    # Brought back by an update: it fires again, its subscription intact.
    async with database.transaction() as conn:
        back = await service.update_trigger(
            conn, "signup", version=retired.version, status="active"
        )
        fired = await fire_trigger(conn, "signup", {}, source="api", served=project.catalog.flows)
    assert back.status == "active" and back.retired_at is None
    assert [run.flow for run in fired.runs] == ["greet"]


async def test_a_repeated_delivery_returns_the_first_fire_and_starts_nothing(
    project: Project,
) -> None:
    database = project.database
    await create(
        database,
        "hook",
        "webhook",
        config={"auth": {"scheme": "none"}},
        subscribe={"greet": "auto"},
    )

    async def deliver() -> Any:
        async with database.transaction() as conn:
            fired = await fire_trigger(
                conn,
                "hook",
                {"id": 7},
                source="webhook",
                delivery_key="delivery-1",
                served=project.catalog.flows,
            )
            # Held open a little, so that the deliveries overlap.
            await asyncio.sleep(0.05)
            return fired

    answers = await asyncio.gather(*(deliver() for _ in range(4)))
    firsts = [a for a in answers if not a.duplicate]
    assert len(firsts) == 1
    assert {a.event_id for a in answers} == {firsts[0].event_id}
    assert {tuple(a.run_ids) for a in answers} == {tuple(firsts[0].run_ids)}
    assert await count(database, "SELECT count(*) FROM flowhost.runs") == 1
    async with database.connection() as conn:
        assert (await service.get_trigger(conn, "hook")).total_fires == 1
    # Another key is another fire.
    async with database.transaction() as conn:
        other = await fire_trigger(
            conn, "hook", {}, source="webhook", delivery_key="delivery-2", served={}
        )
    assert not other.duplicate


async def test_concurrent_fires_are_all_counted(project: Project) -> None:
    database = project.database
    await create(database, "tick", subscribe={"greet": "auto"})

    async def fire() -> None:
        async with database.transaction() as conn:
            await fire_trigger(conn, "tick", {}, source="api", served=project.catalog.flows)

    await asyncio.gather(*(fire() for _ in range(40)))
    async with database.connection() as conn:
        view = await service.get_trigger(conn, "tick")
    assert view.total_fires == 40
    assert await count(database, "SELECT count(*) FROM flowhost.runs") == 40

    # The counts are a projection of the stream: rebuilt, they are the same.
    async with database.transaction() as conn:
        await conn.execute("UPDATE flowhost.trigger_fires SET fires = fires + 100")
        await store.rebuild_fire_counts(conn)
    async with database.connection() as conn:
        rebuilt = await service.get_trigger(conn, "tick")
    assert (rebuilt.total_fires, rebuilt.last_fired_at) == (40, view.last_fired_at)


async def test_flows_this_process_does_not_serve_start_on_their_registered_definition(
    project: Project,
) -> None:
    database = project.database
    greet = project.catalog.flows["greet"]
    await create(database, "signup", subscribe={"greet": "auto", "ghost": "auto"})
    async with database.transaction() as conn:
        await conn.execute(
            QUERIES["upsert_flow"],
            {
                "name": "greet",
                "definition": Jsonb(greet.to_json()),
                "definition_hash": greet.hash,
            },
        )
        fired = await fire_trigger(conn, "signup", {"x": 1}, source="api", served={})
    assert [run.flow for run in fired.runs] == ["greet"]
    assert [(s.flow, s.reason) for s in fired.skipped] == [
        ("ghost", "no host has registered this flow yet")
    ]
    async with database.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT definition_hash FROM flowhost.runs WHERE id = %s", (fired.run_ids[0],)
            )
        ).fetchone()
        step = await (
            await conn.execute(
                "SELECT name, status FROM flowhost.steps WHERE run_id = %s", (fired.run_ids[0],)
            )
        ).fetchone()
    assert row == {"definition_hash": greet.hash}
    assert step == {"name": "greet", "status": "queued"}


async def test_updates_are_optimistic(project: Project) -> None:
    database = project.database
    created = await create(database, "signup", description="first")
    async with database.transaction() as conn:
        updated = await service.update_trigger(
            conn, "signup", version=created.version, description="second"
        )
    assert updated.version == created.version + 1
    async with database.transaction() as conn:
        with pytest.raises(TriggerConflictError) as conflict:
            await service.update_trigger(conn, "signup", version=created.version, description="x")
    assert conflict.value.details["version"] == updated.version
    async with database.transaction() as conn:
        unchanged = await service.update_trigger(
            conn, "signup", version=updated.version, description="second"
        )
        stream = await store.trigger_events(conn, "signup", types=["trigger.updated"])
    assert unchanged.version == updated.version  # nothing changed: no new version, no event
    assert [e.data for e in stream] == [
        {"changes": {"description": {"from": "first", "to": "second"}}, "version": 2}
    ]

    # Two editors with the same version: one wins, the other gets a conflict.
    async def edit(text: str) -> str:
        try:
            async with database.transaction() as conn:
                await service.update_trigger(
                    conn, "signup", version=updated.version, description=text
                )
        except TriggerConflictError:
            return "conflict"
        return "ok"

    outcomes = await asyncio.gather(edit("a"), edit("b"))
    assert sorted(outcomes) == ["conflict", "ok"]


async def test_declarations_and_subscriptions_are_checked(project: Project) -> None:
    database = project.database
    with pytest.raises(TriggerConfigError) as invalid:
        await create(database, "bad", "event", config={"events": ["order.*", "a..b"]})
    assert invalid.value.errors == [
        {
            "pointer": "/config/events/1",
            "message": 'invalid pattern "a..b": empty segment: two dots in a row, or a dot at '
            "the start or end",
        }
    ]
    with pytest.raises(TriggerConfigError) as unknown_type:
        await create(database, "bad", "carrier-pigeon")
    assert unknown_type.value.errors[0]["pointer"] == "/type"
    await create(database, "signup")
    with pytest.raises(TriggerConflictError, match="exists already"):
        await create(database, "signup")
    async with database.transaction() as conn:
        await service.subscribe(conn, "signup", "greet", mode="manual")
        view = await service.subscribe(conn, "signup", "greet")  # mode changed to auto
        assert [(s.flow, s.mode) for s in view.subscriptions] == [("greet", "auto")]
        with pytest.raises(TriggerConfigError):
            await service.subscribe(conn, "signup", "greet", mode="sometimes")
        await service.unsubscribe(conn, "signup", "greet")
        with pytest.raises(SubscriptionNotFoundError):
            await service.unsubscribe(conn, "signup", "greet")
        added = await store.trigger_events(conn, "signup", types=["subscription.added"])
    assert [e.data.get("previous") for e in added] == [None, {"mode": "manual", "source": "api"}]


async def test_secrets_in_configs_stay_out_of_the_stream_and_views(project: Project) -> None:
    view = await create(
        project.database, "hook", "webhook", config={"auth": {"scheme": "github", "secret": "s3"}}
    )
    async with project.database.connection() as conn:
        [registered] = await store.trigger_events(conn, "hook")
        raw = await (
            await conn.execute("SELECT config FROM flowhost.triggers WHERE name = 'hook'")
        ).fetchone()
    assert view.to_json()["config"] == {"auth": {"scheme": "github", "secret": "***"}}
    assert registered.data["config"] == {"auth": {"scheme": "github", "secret": "***"}}
    assert raw == {"config": {"auth": {"scheme": "github", "secret": "s3"}}}


async def test_a_schema_checks_each_fires_input(project: Project) -> None:
    schema = {
        "type": "object",
        "required": ["email"],
        "properties": {"email": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    }
    await create(project.database, "signup", config={"schema": schema}, subscribe={"greet": "auto"})
    async with project.database.transaction() as conn:
        with pytest.raises(TriggerInputError) as invalid:
            await fire_trigger(conn, "signup", {"age": -1}, source="api")
        fired = await fire_trigger(
            conn, "signup", {"email": "a@b", "age": 3}, source="api", served=project.catalog.flows
        )
    assert invalid.value.errors == [
        {"pointer": "", "message": "'email' is a required property"},
        {"pointer": "/age", "message": "-1 is less than the minimum of 0"},
    ]
    assert len(fired.runs) == 1
    with pytest.raises(TriggerConfigError) as bad_schema:
        await create(project.database, "broken", config={"schema": {"type": 12}})
    assert bad_schema.value.errors[0]["pointer"] == "/config/schema"


async def test_listing_pages_by_name(project: Project) -> None:
    for name in ("c", "a", "b"):
        await create(project.database, name, "event" if name == "b" else "manual")
    async with project.database.connection() as conn:
        first = await service.list_triggers(conn, limit=2)
        rest = await service.list_triggers(conn, after=first[-1].name)
        events = await service.list_triggers(conn, type="event")
    assert [t.name for t in first] == ["a", "b"] and [t.name for t in rest] == ["c"]
    assert [t.name for t in events] == ["b"]


async def test_replay_fires_recorded_payloads_again_into_chosen_flows(project: Project) -> None:
    database = project.database
    await create(database, "signup", subscribe={"greet": "auto", "review": "manual"})
    fired = []
    for n in range(3):
        async with database.transaction() as conn:
            fired.append(
                await fire_trigger(
                    conn, "signup", {"n": n}, source="api", served=project.catalog.flows
                )
            )
    async with database.transaction() as conn:
        replayed = await replay_trigger(
            conn, "signup", last=2, flows=["review"], served=project.catalog.flows
        )
    assert replayed.replayed == (fired[1].event_id, fired[2].event_id)
    assert [[run.flow for run in f.runs] for f in replayed.fires] == [["review"], ["review"]]
    async with database.connection() as conn:
        inputs = [
            row["input"]
            for row in await (
                await conn.execute(
                    "SELECT input FROM flowhost.runs WHERE flow = 'review' ORDER BY created_at"
                )
            ).fetchall()
        ]
        again = await store.trigger_events(conn, "signup", after=fired[2].event_id)
    assert inputs == [{"n": 1}, {"n": 2}]
    assert [e.type for e in again] == ["trigger.fired", "trigger.fired", "trigger.replayed"]
    assert [e.data["replay_of"] for e in again[:2]] == list(replayed.replayed)
    assert [e.data["source"] for e in again[:2]] == ["replay", "replay"]
    assert again[2].data["replayed"] == list(replayed.replayed)
    assert again[2].data["fires"] == [f.event_id for f in replayed.fires]

    # Replays are not replayed again; a time range picks fires by their time.
    async with database.transaction() as conn:
        everything = await replay_trigger(conn, "signup", last=10, served=project.catalog.flows)
        ranged = await replay_trigger(
            conn, "signup", since=fired[1].fired_at, until=fired[2].fired_at, served={}
        )
    assert everything.replayed == tuple(f.event_id for f in fired)
    assert ranged.replayed == (fired[1].event_id,)
    async with database.transaction() as conn:
        with pytest.raises(InvalidInputError, match="the last N, or a time range"):
            await replay_trigger(conn, "signup")
        with pytest.raises(InvalidInputError, match="last must be from 1"):
            await replay_trigger(conn, "signup", last=0)
        await service.retire_trigger(conn, "signup")
        with pytest.raises(TriggerRetiredError):
            await replay_trigger(conn, "signup", last=1)
