"""Three `flowhost host` processes share five per-second schedules: every planned time from each
schedule's first fire to its last starts exactly one run (0 duplicates, 0 misses), also while
hosts are SIGKILLed and restarted; and the hosts share the fires.

The fixture project (tests/fixtures/projects/schedules) declares the schedules in its function
config, so each host registers them at start (the first to start does; the others find them).
"""

from __future__ import annotations

import collections
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.support.hosts import HostProcess, running_hosts

PROJECT = Path(__file__).resolve().parent.parent / "fixtures" / "projects" / "schedules"
SCHEDULES = [f"tick.{n}" for n in range(5)]
HOSTS = 3
# No children: the step runs in the host.
HOST_ENV = {"FLOWHOST_WARM_PYTHON": "0", "FLOWHOST_WARM_NODE": "0"}


@dataclass
class Fires:
    """What the database says the schedules did, read once every host stopped."""

    # schedule -> planned time -> the fires (trigger.fired events) for it
    planned: dict[str, dict[datetime, list[dict]]]
    # run id -> (schedule, fire id) from its flow.started event
    runs: dict[uuid.UUID, tuple[str, str]]
    # schedule -> host id -> fires it made
    hosts: dict[str, collections.Counter[str]]
    lags: list[float]


def read_fires(database_url: str) -> Fires:
    planned: dict[str, dict[datetime, list[dict]]] = {name: {} for name in SCHEDULES}
    hosts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    lags = []
    with psycopg.connect(database_url) as conn:
        for trigger, data in conn.execute(
            "SELECT trigger, data FROM flowhost.trigger_events WHERE type = 'trigger.fired'"
            " ORDER BY id"
        ):
            at = datetime.fromisoformat(data["details"]["planned_at"])
            planned[trigger].setdefault(at, []).append(data)
            hosts[trigger][data["details"]["host"]] += 1
            if not data["details"].get("catchup"):
                lags.append(data["details"]["lag_ms"])
        runs = {
            run_id: (trigger["name"], trigger["fire_id"])
            for run_id, trigger in conn.execute(
                "SELECT run_id, data -> 'trigger' FROM flowhost.events WHERE type = 'flow.started'"
            )
        }
        other = conn.execute(
            "SELECT type, count(*) FROM flowhost.trigger_events"
            " WHERE type NOT IN ('trigger.fired', 'trigger.registered', 'subscription.added')"
            " GROUP BY type"
        ).fetchall()
    assert other == [], f"schedules did something else than fire: {other}"
    return Fires(planned, runs, dict(hosts), lags)


def check_exactly_once(fires: Fires, *, seconds: float) -> int:
    """Each planned time from each schedule's first to its last fired once and started one run
    (found in the runs table with that fire's id). Returns the number of fires."""
    total = 0
    fire_ids = set()
    for name, by_time in fires.planned.items():
        times = sorted(by_time)
        assert len(times) >= seconds * 0.8, f"{name} fired only {len(times)} times"
        twice = {t: len(f) for t, f in by_time.items() if len(f) != 1}
        assert twice == {}, f"{name}: planned times fired more than once: {twice}"
        expected = [times[0] + timedelta(seconds=n) for n in range(len(times))]
        missing = sorted(set(expected) - set(times))
        assert missing == [] and times == expected, f"{name} missed {missing[:10]}"
        for [fire] in by_time.values():
            assert len(fire["runs"]) == 1 and fire["skipped"] == [], fire
            run_id = uuid.UUID(fire["runs"][0]["run_id"])
            assert fires.runs[run_id] == (name, fire["fire_id"])
            fire_ids.add(fire["fire_id"])
        total += len(times)
    # No run without its fire.
    assert {fire_id for _, fire_id in fires.runs.values()} == fire_ids
    assert len(fires.runs) == total
    return total


@contextlib.contextmanager
def hosts_running(database_url: str) -> Iterator[list[HostProcess]]:
    with running_hosts(HOSTS, PROJECT, database_url, **HOST_ENV) as hosts:
        yield hosts
    for host in hosts:
        # The row lock alone kept each planned time to one fire: the delivery key never had to.
        assert not [line for line in host.output if "happened already" in line], host.tail()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@pytest.mark.timeout(150)
def test_three_hosts_fire_each_planned_time_of_each_schedule_exactly_once(
    database_url: str,
) -> None:
    seconds = 30
    with hosts_running(database_url):
        time.sleep(seconds)  # the duration under test, not a readiness wait
    fires = read_fires(database_url)
    total = check_exactly_once(fires, seconds=seconds)
    by_host = collections.Counter()
    for counts in fires.hosts.values():
        by_host.update(counts)
    # Every host fired some: they share the work (whoever wakes first takes a due schedule).
    assert len(by_host) == HOSTS, by_host
    print(
        f"{total} fires, by host {sorted(by_host.values())}; lag p50 "
        f"{percentile(fires.lags, 0.5):.1f} ms, p99 {percentile(fires.lags, 0.99):.1f} ms"
    )


@pytest.mark.timeout(200)
def test_the_same_while_hosts_are_killed_and_restarted(database_url: str) -> None:
    kills = 4
    with hosts_running(database_url) as hosts:
        began = time.monotonic()
        for n in range(kills):
            time.sleep(5)  # the duration under test, not a readiness wait
            host = hosts[n % HOSTS]
            host.kill()
            host.start()
            host.wait_ready(timeout=60)
        time.sleep(5)
        seconds = time.monotonic() - began
    fires = read_fires(database_url)
    total = check_exactly_once(fires, seconds=seconds)
    hosts_seen = {host for counts in fires.hosts.values() for host in counts}
    # The killed hosts' fires, and those of their new incarnations.
    assert len(hosts_seen) >= HOSTS + 1
    print(f"{total} fires over {seconds:.0f} s with {kills} kills by {len(hosts_seen)} hosts")
