"""`flowhost schedule list|show|enable|disable|next` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from flowhost.cli.exit_codes import NOT_FOUND, WRONG_STATE
from flowhost.db.database import Database
from flowhost.triggers import schedule_service
from flowhost.triggers.declarations import TriggerSpec
from flowhost.triggers.service import create_trigger
from tests.support.cli import flowhost


async def test_schedule_commands(tmp_path: Path, database_url: str, database: Database) -> None:
    async with database.transaction() as conn:
        await schedule_service.create_schedule(
            conn,
            "nightly",
            cron="30 2 * * *",
            timezone="Europe/Berlin",
            catchup="all",
            subscribe={"reports": "auto"},
        )
        await create_trigger(conn, TriggerSpec("order.paid", "event"))

    def cli(*args: str) -> tuple[int, str, str]:
        result = flowhost(*args, project=tmp_path, database_url=database_url)
        return result.returncode, result.stdout, result.stderr

    code, out, err = cli("schedule", "list")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[:4] == ["SCHEDULE", "STATE", "CRON", "ZONE"]
    assert row.split()[:2] == ["nightly", "enabled"] and "Europe/Berlin" in row

    code, out, err = cli("schedule", "show", "nightly", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["cron"] == "30 2 * * *" and shown["catchup"] == "all"
    assert shown["subscriptions"] == [{"flow": "reports", "mode": "auto"}]
    assert shown["lag"]["fires"] == 0 and shown["lastFires"] == []
    code, out, _ = cli("schedule", "show", "nightly")
    assert "overlap: skip  catch-up: all" in out and "next fire: " in out

    code, out, err = cli("schedule", "next", "nightly", "-n", "3", "--json")
    assert code == 0, err
    nights = json.loads(out)
    # 02:30 Berlin time (03:00 on the night the clocks skip 02:00-03:00).
    assert len(nights) == 3
    assert all(t[10:19] in ("T02:30:00", "T03:00:00") for t in nights), nights
    code, out, _ = cli("schedule", "next", "nightly", "-n", "1")
    assert out.strip().endswith(" UTC)") and out.startswith(nights[0])

    code, out, err = cli("schedule", "disable", "nightly", "--version", str(shown["version"]))
    assert code == 0, err
    assert out.startswith("schedule nightly disabled (version 2); next fire: -")
    code, _, err = cli("schedule", "enable", "nightly", "--version", "1")
    assert code == WRONG_STATE and "is at version 2, not 1" in err
    code, out, err = cli("schedule", "enable", "nightly", "--json")
    assert code == 0, err
    assert json.loads(out)["enabled"] is True and json.loads(out)["nextFire"] is not None

    code, _, err = cli("schedule", "show", "missing")
    assert code == NOT_FOUND and err == "flowhost: error: no schedule 'missing'\n"
    code, _, err = cli("schedule", "next", "order.paid")
    assert code == NOT_FOUND and "is a event trigger, not a schedule" in err
