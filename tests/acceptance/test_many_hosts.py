"""Three hosts on one database run 1,000 runs of a branching flow: every attempt that ended ran
its handler exactly once, every run ends with the status its input calls for, none is left
behind; and the same while one host after another is SIGKILLed and restarted.

The flow (tests/fixtures/projects/branching) picks a branch from its input (the other branch is
skipped), fans out to three parallel steps, one of which fails its first attempt for some inputs
(and every attempt for a few, which fails those runs) and one of which waits on a 0.2 s time
await, joins them in a Python child, and ends with a step in the host that waits for an event
another step emits, or a step in a Node child, depending on the branch. Every handler records its
execution (run, step, attempt, host pid) outside the engine: Python steps in `test_executions`
through a connection of their own, the Node step in `ctx.state`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flowhost.engine.orchestrator import start_runs
from flowhost.project import open_project
from flowhost.settings import load_settings
from tests.support.hosts import HostProcess, running_hosts

PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "projects" / "branching"
FLOW = "branching"
RUNS = 1000
HOSTS = 3
START_BATCH = 50

LEFT = {"route", "left", "fan_a", "fan_b", "flaky", "join", "releaser", "after_left"}
RIGHT = {"route", "right", "fan_a", "fan_b", "flaky", "join", "after_right"}
ALL_STEPS = LEFT | RIGHT

EXECUTIONS_TABLE = """
CREATE TABLE test_executions (
    run_id uuid NOT NULL,
    step text NOT NULL,
    attempt integer NOT NULL,
    host_pid integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
# Python steps record in test_executions; the Node step writes ctx.state key "executed".
EXECUTIONS = """
SELECT run_id, step, attempt, host_pid, at FROM test_executions
UNION ALL
SELECT run_id, step, attempt, (data -> 'value' ->> 'host_pid')::int, ts
FROM flowhost.events WHERE type = 'state.set' AND data ->> 'key' = 'executed'
ORDER BY at
"""
# What the awaits did: fan_b waits 0.2 s; after_left waits for releaser's emit.
AWAIT_EVENTS = """
SELECT run_id, step, type, ts FROM flowhost.events
WHERE type LIKE 'await.%'
   OR (type IN ('step.started', 'step.completed')
       AND step IN ('fan_b', 'releaser', 'after_left'))
ORDER BY id
"""
# A canceled step (its run failed meanwhile) is told apart by the status it had then:
# 'step.canceled:running' is an attempt that may have run its handler, ':queued' one that did not.
STEP_EVENTS = """
SELECT run_id, step, attempt,
       CASE WHEN type = 'step.canceled' THEN type || ':' || (data ->> 'previous_status')
            ELSE type END
FROM flowhost.events
WHERE type IN ('step.started', 'step.completed', 'step.retry', 'step.failed', 'step.skipped',
               'step.canceled')
ORDER BY id
"""

Attempt = tuple[uuid.UUID, str, int]


@dataclass(frozen=True)
class Expected:
    """What the fixture flow does with input `n` (see tests/fixtures/projects/branching)."""

    n: int

    @property
    def side(self) -> str:
        return "left" if self.n % 2 == 0 else "right"

    @property
    def fails(self) -> bool:
        return self.n % 50 == 7

    @property
    def flaky_attempts(self) -> int:
        """Attempts `flaky` takes: the first fails for multiples of 3; all 3 fail for `fails`."""
        return 3 if self.fails else 2 if self.n % 3 == 0 else 1

    @property
    def input(self) -> dict[str, Any]:
        return {"n": self.n, "side": self.side, "fail": self.fails}

    @property
    def status(self) -> str:
        return "failed" if self.fails else "completed"

    @property
    def steps(self) -> dict[str, str]:
        taken = LEFT if self.side == "left" else RIGHT
        return {step: "completed" if step in taken else "skipped" for step in ALL_STEPS}


@dataclass
class Outcome:
    """What the database says happened, read once every run ended and every host stopped."""

    runs: dict[uuid.UUID, dict[str, Any]]
    steps: dict[uuid.UUID, dict[str, str]]
    events: dict[Attempt, collections.Counter[str]] = field(default_factory=dict)
    # (run, step, attempt) -> [(host pid, time)] in time order
    executions: dict[Attempt, list[tuple[int, datetime]]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    # (run, step) -> event type -> times, for the steps with awaits and releaser
    awaits: dict[tuple[uuid.UUID, str], dict[str, list[datetime]]] = field(default_factory=dict)
    # run -> what the event after_left waited for resolved with
    released: dict[uuid.UUID, Any] = field(default_factory=dict)


def read_outcome(database_url: str) -> Outcome:
    with psycopg.connect(database_url) as conn:
        runs = {
            row[0]: {"status": row[1], "input": row[2], "error": row[3]}
            for row in conn.execute(
                "SELECT id, status, input, error FROM flowhost.runs WHERE flow = %s", (FLOW,)
            )
        }
        steps: dict[uuid.UUID, dict[str, str]] = collections.defaultdict(dict)
        for run_id, name, status in conn.execute("SELECT run_id, name, status FROM flowhost.steps"):
            steps[run_id][name] = status
        outcome = Outcome(runs, dict(steps))
        for run_id, step, attempt, kind in conn.execute(STEP_EVENTS):
            key = (run_id, step, attempt or 0)
            outcome.events.setdefault(key, collections.Counter())[kind] += 1
        for run_id, step, attempt, pid, at in conn.execute(EXECUTIONS):
            outcome.executions.setdefault((run_id, step, attempt), []).append((pid, at))
        for run_id, step, kind, ts in conn.execute(AWAIT_EVENTS):
            outcome.awaits.setdefault((run_id, step), {}).setdefault(kind, []).append(ts)
        for run_id, result in conn.execute(
            "SELECT run_id, result FROM flowhost.steps"
            " WHERE name = 'after_left' AND status = 'completed'"
        ):
            outcome.released[run_id] = result["released"]
        row = conn.execute(
            "SELECT total, running, awaiting, completed, failed FROM flowhost.flow_stats"
            " WHERE flow = %s",
            (FLOW,),
        ).fetchone()
        assert row is not None
        names = ("total", "running", "awaiting", "completed", "failed")
        outcome.stats = dict(zip(names, row, strict=True))
    return outcome


def terminal_runs(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM flowhost.runs WHERE flow = %s"
            " AND status IN ('completed', 'failed', 'canceled', 'stalled')",
            (FLOW,),
        ).fetchone()
    return int(row[0]) if row else 0


# Children per runtime per host: each Python child opens a connection to record itself, and
# the server takes 100.
MAX_CHILDREN = "6"


@contextlib.contextmanager
def hosts_running(database_url: str, **env: str) -> Iterator[list[HostProcess]]:
    """Three hosts, ready; stopped with SIGINT at the end (each must exit cleanly)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(EXECUTIONS_TABLE)
    env.setdefault("FLOWHOST_MAX_CHILDREN", MAX_CHILDREN)
    with running_hosts(HOSTS, PROJECT, database_url, **env) as hosts:
        yield hosts


@contextlib.asynccontextmanager
async def starter(database_url: str) -> AsyncIterator[Any]:
    """Starts runs through the engine's own API, as a trigger or the CLI would."""
    settings = load_settings(PROJECT, environ={"DATABASE_URL": database_url}, pool_size=2)
    async with open_project(settings) as project:
        flow = project.catalog.flows[FLOW]

        async def start(inputs: list[dict[str, Any]]) -> list[uuid.UUID]:
            async with project.database.transaction() as conn:
                return await start_runs(conn, flow, inputs)

        yield start


async def wait_until_all_ended(database_url: str, deadline: float) -> None:
    while (ended := await asyncio.to_thread(terminal_runs, database_url)) < RUNS:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {ended} of {RUNS} runs ended before the deadline")
        await asyncio.sleep(0.25)


def check_runs(outcome: Outcome, started: dict[uuid.UUID, Expected]) -> None:
    """No run lost, none stuck, each with the status and step statuses its input calls for."""
    assert set(outcome.runs) == set(started)
    wrong = {
        run_id: (run["status"], started[run_id].status, run["error"])
        for run_id, run in outcome.runs.items()
        if run["status"] != started[run_id].status
    }
    assert not wrong, (
        f"{len(wrong)} runs ended with another status (status, expected, error):"
        f" {list(wrong.values())[:3]}"
    )
    for run_id, expected in started.items():
        steps = outcome.steps[run_id]
        if expected.fails:
            assert outcome.runs[run_id]["error"]["step"] == "flaky"
            assert steps["flaky"] == "failed"
            # The AND-join lacks flaky.done: neither it nor what follows it ever completes.
            after_join = {"join", "releaser", "after_left", "after_right"}
            assert {step for step in after_join if steps.get(step) == "completed"} == set()
        else:
            assert steps == expected.steps, f"run {run_id} (n={expected.n})"
    assert outcome.stats == {
        "total": RUNS,
        "running": 0,
        "awaiting": 0,
        "completed": sum(not e.fails for e in started.values()),
        "failed": sum(e.fails for e in started.values()),
    }


def check_step_events(outcome: Outcome, started: dict[uuid.UUID, Expected]) -> None:
    """Each step completed once at most (exactly once where the run needed it), flaky retried
    where its input says so, and skipped steps skipped once."""
    completions: collections.Counter[tuple[uuid.UUID, str]] = collections.Counter()
    for (run_id, step, _), kinds in outcome.events.items():
        completions[(run_id, step)] += kinds["step.completed"]
    twice = [key for key, count in completions.items() if count > 1]
    assert not twice, f"steps completed more than once: {twice[:5]}"
    for run_id, expected in started.items():
        flaky = [
            outcome.events.get((run_id, "flaky", attempt), collections.Counter())
            for attempt in (1, 2, 3)
        ]
        attempts = expected.flaky_attempts
        assert [kinds["step.retry"] for kinds in flaky] == [
            1 if a < attempts else 0 for a in (1, 2, 3)
        ], f"run {run_id} (n={expected.n})"
        if expected.fails:
            assert flaky[2]["step.failed"] == 1
            continue
        assert flaky[attempts - 1]["step.completed"] == 1
        for step, status in expected.steps.items():
            if status == "completed":
                assert completions[(run_id, step)] == 1, f"{step} of run {run_id}"
            else:
                assert outcome.events[(run_id, step, 0)]["step.skipped"] == 1


def check_awaits(outcome: Outcome, started: dict[uuid.UUID, Expected]) -> None:
    """In every completed run, fan_b started at least 0.2 s after its time await was registered,
    and after_left only once releaser's emit resolved its event await, with that payload."""
    # resolve_at is the registering statement's clock + 0.2 s; its event is stamped a moment later
    delay = timedelta(seconds=0.2) - timedelta(milliseconds=5)
    for run_id, expected in started.items():
        if expected.fails:
            continue
        fan_b = outcome.awaits[(run_id, "fan_b")]
        assert len(fan_b["await.registered"]) == len(fan_b["await.resolved"]) == 1, fan_b
        assert fan_b["await.registered"][0] + delay <= fan_b["await.resolved"][0]
        assert fan_b["await.resolved"][0] <= min(fan_b["step.started"])
        if expected.side != "left":
            assert (run_id, "after_left") not in outcome.awaits  # skipped: nothing registered
            continue
        after = outcome.awaits[(run_id, "after_left")]
        releaser = outcome.awaits[(run_id, "releaser")]
        assert len(after["await.registered"]) == len(after["await.resolved"]) == 1, after
        assert after["await.registered"][0] <= min(releaser["step.started"])
        assert max(releaser["step.completed"]) <= after["await.resolved"][0]
        assert after["await.resolved"][0] <= min(after["step.started"])
        assert outcome.released[run_id] == {"n": expected.n}


def ended_attempts(outcome: Outcome) -> tuple[set[Attempt], set[Attempt]]:
    """(attempts whose handler's end the engine recorded: completed, retried or failed;
    attempts stopped while running because their run failed, which may or may not have
    reached their handler)."""
    ended, stopped = set(), set()
    for key, kinds in outcome.events.items():
        if kinds["step.completed"] or kinds["step.retry"] or kinds["step.failed"]:
            ended.add(key)
        elif kinds["step.canceled:running"]:
            stopped.add(key)
    return ended, stopped


def check_executed_once(outcome: Outcome) -> None:
    """Without crashes: each attempt the engine ended ran its handler exactly once, one it
    stopped at most once, and the handler ran for no other attempt; each attempt was started
    once."""
    ended, stopped = ended_attempts(outcome)
    counts = {key: len(runs) for key, runs in outcome.executions.items()}
    assert ended <= set(counts) <= ended | stopped, (
        f"executed but never ended: {sorted(set(counts) - ended - stopped)[:5]}; "
        f"ended but never executed: {sorted(ended - set(counts))[:5]}"
    )
    assert {key: n for key, n in counts.items() if n != 1} == {}
    started = {key: kinds["step.started"] for key, kinds in outcome.events.items() if key[2]}
    assert {key: n for key, n in started.items() if n != 1} == {}


def check_executed_once_but_killed(outcome: Outcome, killed: set[int]) -> int:
    """With crashes: each ended attempt ran at least once; every execution but the last of an
    attempt, and every execution of an attempt that neither ended nor was stopped, ran on a
    host that was killed afterwards. Returns how many executions a kill cut short."""
    ended, stopped = ended_attempts(outcome)
    missing = sorted(ended - set(outcome.executions))
    assert not missing, f"ended but never executed: {missing[:5]}"
    repeated = 0
    unexplained = []
    for key, executions in outcome.executions.items():
        cut_short = executions[:-1] if key in ended | stopped else executions
        repeated += len(cut_short)
        unexplained += [(key, pid) for pid, _ in cut_short if pid not in killed]
    assert not unexplained, f"executions repeated on hosts never killed: {unexplained[:5]}"
    return repeated


async def run_all(
    database_url: str, hosts: list[HostProcess], *, start_pause: float, deadline: float
) -> dict[uuid.UUID, Expected]:
    """Start the RUNS runs in batches (`start_pause` apart) and wait until every one ended."""
    started: dict[uuid.UUID, Expected] = {}
    began = time.monotonic()
    async with starter(database_url) as start:
        for offset in range(0, RUNS, START_BATCH):
            batch = [Expected(n) for n in range(offset, min(RUNS, offset + START_BATCH))]
            ids = await start([e.input for e in batch])
            started.update(zip(ids, batch, strict=True))
            await asyncio.sleep(start_pause)
    print(f"{RUNS} runs started in {time.monotonic() - began:.1f} s")
    await wait_until_all_ended(database_url, deadline)
    print(f"{RUNS} runs ended {time.monotonic() - began:.1f} s after the first start")
    return started


@pytest.mark.timeout(150)
async def test_three_hosts_run_a_thousand_branching_runs_each_step_once(
    database_url: str,
) -> None:
    began = time.monotonic()
    with hosts_running(database_url) as hosts:
        started = await run_all(database_url, hosts, start_pause=0, deadline=began + 110)
    outcome = read_outcome(database_url)
    check_runs(outcome, started)
    check_step_events(outcome, started)
    check_awaits(outcome, started)
    check_executed_once(outcome)
    # Every host did some of the work.
    pids = {pid for runs in outcome.executions.values() for pid, _ in runs}
    assert len(pids) == HOSTS


# Jobs of a killed host come back this long after its last heartbeat. A live host's job beats
# every half of it (flushed within an eighth more), so it is taken for dead only if the host
# stalls for about a second and a half: small enough for quick recovery, with room for a
# loaded CI machine. (A live job taken for dead would run twice on a host never killed, and
# check_executed_once_but_killed would fail.)
KILL_HEARTBEAT_TIMEOUT = "3"
KILL_EVERY = 3.0
MAX_KILLS = 15


async def kill_and_restart(
    hosts: list[HostProcess], every: float, most: int, done: asyncio.Event
) -> int:
    """Every `every` seconds SIGKILL the next host (in turn) and start it again, until `done` or
    `most` kills; a host still starting after its last kill is passed over. Returns the number
    of kills. (Each kill costs the others a restart and a heartbeat timeout's wait for the
    killed host's jobs: without a bound, a slow machine would be slowed further by kills that
    come all the more often.)"""
    kills = 0
    turn = 0
    while kills < most:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), every)
        if done.is_set():
            break
        host = hosts[turn % len(hosts)]
        turn += 1
        if not host.ready:
            continue
        await asyncio.to_thread(host.kill)
        kills += 1
        host.start()
    return kills


@pytest.mark.timeout(200)
async def test_the_same_while_one_host_after_another_is_killed_and_restarted(
    database_url: str,
) -> None:
    began = time.monotonic()
    with hosts_running(database_url, FLOWHOST_HEARTBEAT_TIMEOUT=KILL_HEARTBEAT_TIMEOUT) as hosts:
        done = asyncio.Event()
        killer = asyncio.create_task(kill_and_restart(hosts, KILL_EVERY, MAX_KILLS, done))
        try:
            # Starts spread over ~20 s, so that kills land while runs are in every stage.
            started = await run_all(database_url, hosts, start_pause=1.0, deadline=began + 160)
        finally:
            done.set()
            kills = await killer
        for host in hosts:
            await asyncio.to_thread(host.wait_ready, 60)
    outcome = read_outcome(database_url)
    killed = {pid for host in hosts for pid in host.killed_pids}
    assert kills >= 4, f"only {kills} kills happened while the runs were processed"
    check_runs(outcome, started)
    check_step_events(outcome, started)
    check_awaits(outcome, started)
    repeated = check_executed_once_but_killed(outcome, killed)
    # The kills did cut attempts short (hosts hold up to a few hundred jobs each).
    assert repeated > 0
    print(f"{kills} kills cut {repeated} executions short")
