"""Triggers declared in function configs, synced into the registry: at host start, again after a
change, by two hosts at once, and retired when nothing declares or uses them any more."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from flowhost.db.database import Database
from flowhost.project import Project, open_project
from flowhost.settings import load_settings
from flowhost.store import triggers as store
from flowhost.triggers import service
from flowhost.triggers.declarations import TriggerSpec
from flowhost.triggers.sync import Declarations, SyncResult, declarations_of, sync_triggers
from tests.support.engine import running_host, write_functions

SIGNUPS = """
from flowhost_worker import step

@step(
    flow="signups",
    entry=True,
    isolation="inprocess",
    triggers={
        "define": [
            {"name": "signup.form", "type": "manual", "display_name": "Sign up",
             "config": {"schema": {"type": "object"}}},
            {"name": "user.created", "type": "event", "config": {"events": ["user.created"]}},
        ],
        "subscribe": ["signup.form", {"name": "user.created", "mode": "manual"}],
    },
)
async def welcome(data, ctx):
    return data
"""

AUDIT = """
from flowhost_worker import step

@step(flow="audit", entry=True, isolation="inprocess", triggers={"subscribe": "user.created"})
async def audit(data, ctx):
    return data
"""


@contextlib.asynccontextmanager
async def project_at(root: Path, database_url: str) -> AsyncIterator[Project]:
    async with open_project(load_settings(root, environ={"DATABASE_URL": database_url})) as opened:
        yield opened


def declarations(project: Project) -> Declarations:
    catalog = project.catalog
    return declarations_of(catalog.flows, catalog.problems, root=catalog.functions_dir)


async def sync(database: Database, declared: Declarations) -> SyncResult:
    async with database.transaction() as conn:
        return await sync_triggers(conn, declared)


async def registry(database: Database) -> dict[str, Any]:
    async with database.connection() as conn:
        views = await service.list_triggers(conn)
        events = {v.name: [e.type for e in await store.trigger_events(conn, v.name)] for v in views}
    return {
        v.name: {
            "type": v.type,
            "status": v.status,
            "source": v.source,
            "version": v.version,
            "declared_at": v.declared_at,
            "subscriptions": sorted((s.flow, s.mode, s.source) for s in v.subscriptions),
            "events": events[v.name],
        }
        for v in views
    }


async def test_a_host_start_registers_the_declared_triggers(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(tmp_path, {"signups.py": SIGNUPS, "audit.py": AUDIT})
    async with running_host(tmp_path, database_url) as project:
        async with asyncio.timeout(30):
            while len(found := await registry(project.database)) < 2:
                await asyncio.sleep(0.02)
    assert found == {
        "signup.form": {
            "type": "manual",
            "status": "active",
            "source": "config",
            "version": 1,
            "declared_at": "signups.py",
            "subscriptions": [("signups", "auto", "config")],
            "events": ["trigger.registered", "subscription.added"],
        },
        "user.created": {
            "type": "event",
            "status": "active",
            "source": "config",
            "version": 1,
            "declared_at": "signups.py",
            "subscriptions": [("audit", "auto", "config"), ("signups", "manual", "config")],
            "events": ["trigger.registered", "subscription.added", "subscription.added"],
        },
    }


async def test_two_hosts_syncing_at_once_write_each_change_once(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(tmp_path, {"signups.py": SIGNUPS, "audit.py": AUDIT})
    async with project_at(tmp_path, database_url) as project:
        declared = declarations(project)
        first, second = await asyncio.gather(
            sync(project.database, declared), sync(project.database, declared)
        )
        assert sorted([first.changed, second.changed]) == [False, True]
        again = await sync(project.database, declared)
        assert not again.changed and not again.problems
        found = await registry(project.database)
    assert {name: len(t["events"]) for name, t in found.items()} == {
        "signup.form": 2,
        "user.created": 3,
    }
    assert {t["version"] for t in found.values()} == {1}


async def test_changes_are_applied_and_unused_triggers_retired(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(tmp_path, {"signups.py": SIGNUPS, "audit.py": AUDIT})
    async with project_at(tmp_path, database_url) as project:
        await sync(project.database, declarations(project))
        # An API subscription keeps user.created alive once no config mentions it.
        async with project.database.transaction() as conn:
            await service.subscribe(conn, "user.created", "reporting")
        (tmp_path / "functions" / "audit.py").unlink()
        (tmp_path / "functions" / "signups.py").write_text(
            SIGNUPS.replace('"display_name": "Sign up"', '"display_name": "Join"')
            .replace('{"name": "user.created", "type": "event", "config": '
                     '{"events": ["user.created"]}},', "")
            .replace(', {"name": "user.created", "mode": "manual"}', "")
        )  # fmt: skip
        await project.catalog.reload()
        assert not project.catalog.problems
        result = await sync(project.database, declarations(project))
        found = await registry(project.database)
        assert result.updated == ["signup.form"] and result.retired == []
        assert sorted(result.unsubscribed) == [
            ("user.created", "audit"),
            ("user.created", "signups"),
        ]
        assert found["signup.form"]["version"] == 2
        assert found["signup.form"]["events"][-1] == "trigger.updated"
        assert found["user.created"]["status"] == "active"
        assert found["user.created"]["subscriptions"] == [("reporting", "auto", "api")]

        # Without that subscription, nothing uses it: the next sync retires it.
        async with project.database.transaction() as conn:
            await service.unsubscribe(conn, "user.created", "reporting")
        retired = await sync(project.database, declarations(project))
        assert retired.retired == ["user.created"]
        async with project.database.connection() as conn:
            [event] = await store.trigger_events(conn, "user.created", types=["trigger.retired"])
            view = await service.get_trigger(conn, "user.created")
        assert view.status == "retired"
        assert event.data["reason"] == (
            "no function config declares it, and no flow subscribes to it"
        )
        # Declared again, it is back.
        (tmp_path / "functions" / "signups.py").write_text(SIGNUPS)
        await project.catalog.reload()
        back = await sync(project.database, declarations(project))
        assert back.updated == ["signup.form", "user.created"] and back.subscribed == [
            ("user.created", "signups")
        ]
        async with project.database.connection() as conn:
            assert (await service.get_trigger(conn, "user.created")).status == "active"


async def test_nothing_is_removed_while_a_function_file_fails_to_load(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(tmp_path, {"signups.py": SIGNUPS, "audit.py": AUDIT})
    async with project_at(tmp_path, database_url) as project:
        await sync(project.database, declarations(project))
        (tmp_path / "functions" / "audit.py").write_text("this is not python\n")
        (tmp_path / "functions" / "signups.py").write_text(
            SIGNUPS.replace('"subscribe": ["signup.form", ', '"subscribe": [')
        )
        await project.catalog.reload()
        assert [p.flow for p in project.catalog.problems] == [None]
        result = await sync(project.database, declarations(project))
        found = await registry(project.database)
    assert not result.unsubscribed and not result.retired
    assert found["signup.form"]["subscriptions"] == [("signups", "auto", "config")]
    assert ("audit", "auto", "config") in found["user.created"]["subscriptions"]


async def test_a_subscription_to_an_unknown_trigger_is_a_problem(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(tmp_path, {"audit.py": AUDIT})
    async with project_at(tmp_path, database_url) as project:
        result = await sync(project.database, declarations(project))
        assert await registry(project.database) == {}
        assert result.problems == [
            "audit.py:4: flow 'audit' subscribes to trigger 'user.created', which no function "
            "defines and the API did not create"
        ]
        # Created through the API, the next sync subscribes the flow.
        async with project.database.transaction() as conn:
            await service.create_trigger(conn, TriggerSpec("user.created", "event"))
        later = await sync(project.database, declarations(project))
        assert later.subscribed == [("user.created", "audit")] and not later.problems
