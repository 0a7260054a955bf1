"""Starting a run is one transaction: a process killed inside it leaves no run and no job."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg

from tests.support.cli import cli_env

# Starts a run through the engine, then stops inside the still-open transaction.
STARTER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from flowhost.db.database import Database
    from flowhost.engine.discovery import discover
    from flowhost.engine.orchestrator import start_runs

    async def main(url, functions, commit):
        flows = (await discover(Path(functions))).flows
        async with Database(url) as database:
            async with database.transaction() as conn:
                ids = await start_runs(conn, flows["orders"], [{"id": "K-1"}])
                print("inside", ids[0], flush=True)
                if not commit:
                    await asyncio.sleep(3600)
        print("committed", flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] == "commit"))
""")


def counts(database_url: str) -> tuple[int, int, int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("""
            SELECT (SELECT count(*) FROM flowhost.runs), (SELECT count(*) FROM flowhost.steps),
                   (SELECT count(*) FROM flowhost.events), (SELECT count(*) FROM pgqueuer)
        """).fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3]


def start(database_url: str, orders_project: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", STARTER, database_url, str(orders_project / "functions"), mode],
        env=cli_env(database_url),
        stdout=subprocess.PIPE,
        text=True,
    )


def test_killed_inside_the_start_transaction_leaves_nothing(
    orders_project: Path, database_url: str
) -> None:
    with start(database_url, orders_project, "hang") as process:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("inside")
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert counts(database_url) == (0, 0, 0, 0)


def test_a_committed_start_has_run_entry_step_event_and_job(
    orders_project: Path, database_url: str
) -> None:
    with start(database_url, orders_project, "commit") as process:
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and "committed" in out
    assert counts(database_url) == (1, 1, 1, 1)
