"""Schedule configs (every bad one refused with the field it is wrong in) and what a tick fires:
late times within the grace, the catch-up policies after a downtime, the cap on "all", and DST
through the Rust cron."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flowhost.cron import CronSchedule
from flowhost.triggers.declarations import StepTriggers, TriggerSpec
from flowhost.triggers.schedule_config import (
    MAX_CATCHUP,
    MAX_COUNTED,
    ScheduleConfig,
    default_payload,
    plan_tick,
)

BERLIN = ZoneInfo("Europe/Berlin")


def problems(config: object) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in TriggerSpec("nightly", "schedule", config).problems()]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "pointer", "words"),
    [
        ({}, "/config/cron", "is required"),
        ({"cron": 5}, "/config/cron", "must be a cron expression"),
        ({"cron": "61 * * * *"}, "/config/cron", "minute field"),
        ({"cron": "* * * *"}, "/config/cron", "expected 5"),
        ({"cron": "0 0 30 2 *"}, "/config/cron", "can never fire"),
        ({"cron": "@reboot"}, "/config/cron", "reboot"),
        ({"cron": "@daily", "timezone": "Mars/Olympus"}, "/config/timezone", "unknown time zone"),
        ({"cron": "@daily", "timezone": 1}, "/config/timezone", "IANA time zone"),
        ({"cron": "@daily", "overlap": "wait"}, "/config/overlap", "skip, queue, replace, allow"),
        ({"cron": "@daily", "catchup": True}, "/config/catchup", "skip, once, all"),
        ({"cron": "@daily", "enabled": "yes"}, "/config/enabled", "true or false"),
        ({"cron": "@daily", "cronn": "x"}, "/config/cronn", "unknown key"),
        (
            {
                "cron": "@daily",
                "payload": {"n": "1"},
                "schema": {"properties": {"n": {"type": "integer"}}},
            },
            "/config/payload/n",
            "is not of type 'integer'",
        ),
        ({"cron": "@daily", "schema": {"type": 5}}, "/config/schema", "not a valid JSON Schema"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(config: dict, pointer: str, words: str) -> None:
    found = problems(config)
    assert [p for p, _ in found] == [pointer], found
    assert words in found[0][1]


def test_every_problem_is_listed_and_discovery_says_where() -> None:
    found = problems({"cron": "bad", "timezone": "Nowhere/City", "overlap": 1})
    assert [p for p, _ in found] == ["/config/cron", "/config/timezone", "/config/overlap"]
    declared = StepTriggers.from_config(
        {"define": [{"name": "nightly", "type": "schedule", "config": {"cron": "0 25 * * *"}}]}
    )
    assert declared is not None
    [message] = declared.problems()
    assert message.startswith("triggers.define[0] ('nightly'): /config/cron: ")
    assert "hour field" in message


def test_a_config_gets_its_defaults_and_the_zone_its_canonical_name() -> None:
    config = ScheduleConfig.from_config({"cron": "0 9 * * MON-FRI", "timezone": "europe/berlin"})
    assert (config.timezone, config.overlap, config.catchup, config.enabled) == (
        "Europe/Berlin",
        "skip",
        "once",
        True,
    )
    planned = datetime(2024, 5, 6, 7, tzinfo=UTC)
    assert config.input_for("reports", planned) == default_payload("reports", planned)
    assert config.input_for("reports", planned) == {
        "schedule": "reports",
        "planned_at": "2024-05-06T07:00:00+00:00",
    }
    given = ScheduleConfig.from_config({"cron": "@daily", "payload": None})
    assert given.input_for("x", planned) is None
    with pytest.raises(ValueError, match="/config/cron"):
        ScheduleConfig.from_config({"cron": "nope"})


# -- ticks ----------------------------------------------------------------------------------

EVERY_SECOND = CronSchedule("* * * * * *")
EVERY_MINUTE = CronSchedule("* * * * *")
NOW = datetime(2024, 6, 1, 12, 0, 30, 4000, tzinfo=UTC)


def times(plan_fires: tuple) -> list[datetime]:  # type: ignore[type-arg]
    return [fire.at for fire in plan_fires]


def test_nothing_fires_before_the_planned_time() -> None:
    later = NOW + timedelta(milliseconds=1)
    plan = plan_tick(EVERY_SECOND, later, NOW, catchup="all", grace=10)
    assert plan.fires == () and plan.missed is None and plan.next_fire == later


def test_the_due_time_fires_and_the_next_one_is_the_following_second() -> None:
    due = NOW.replace(microsecond=0)
    plan = plan_tick(EVERY_SECOND, due, NOW, catchup="skip", grace=10)
    assert times(plan.fires) == [due] and not plan.fires[0].catchup
    assert plan.next_fire == due + timedelta(seconds=1) and plan.missed is None


def test_times_late_within_the_grace_fire_whatever_the_policy() -> None:
    first = NOW.replace(microsecond=0) - timedelta(seconds=3)
    for catchup in ("skip", "once", "all"):
        plan = plan_tick(EVERY_SECOND, first, NOW, catchup=catchup, grace=5)
        assert times(plan.fires) == [first + timedelta(seconds=n) for n in range(4)]
        assert plan.missed is None


@pytest.mark.parametrize(
    ("catchup", "fired", "missed"),
    [("skip", [], 61), ("once", [60], 60), ("all", list(range(61)), 0)],
)
def test_after_a_downtime_missed_times_follow_the_catch_up_policy(
    catchup: str, fired: list[int], missed: int
) -> None:
    # Down for an hour: the minutes from 11:00 to 12:00 were missed (12:00 is 30 s old).
    first = datetime(2024, 6, 1, 11, tzinfo=UTC)
    plan = plan_tick(EVERY_MINUTE, first, NOW, catchup=catchup, grace=10)
    minutes = [first + timedelta(minutes=n) for n in fired]
    assert times(plan.fires) == minutes
    assert all(fire.catchup for fire in plan.fires)
    if missed:
        assert plan.missed is not None
        assert (plan.missed.count, plan.missed.more) == (missed, False)
        assert plan.missed.first == first
    else:
        assert plan.missed is None
    assert plan.next_fire == datetime(2024, 6, 1, 12, 1, tzinfo=UTC)


def test_the_same_with_the_current_minute_late_within_the_grace() -> None:
    first = datetime(2024, 6, 1, 11, tzinfo=UTC)
    plan = plan_tick(EVERY_MINUTE, first, NOW, catchup="once", grace=60)
    assert [(f.at.minute, f.at.hour, f.catchup) for f in plan.fires] == [
        (59, 11, True),
        (0, 12, False),
    ]


def test_catch_up_all_fires_the_latest_hundred_and_counts_the_rest_as_missed() -> None:
    # Down for a week of per-second fires: the tick does not walk them all.
    first = NOW - timedelta(days=7)
    plan = plan_tick(EVERY_SECOND, first.replace(microsecond=0), NOW, catchup="all", grace=10)
    late = [fire for fire in plan.fires if not fire.catchup]
    caught = [fire for fire in plan.fires if fire.catchup]
    assert len(caught) == MAX_CATCHUP and len(late) == 10
    assert times(plan.fires) == sorted(times(plan.fires))
    assert caught[-1].at == NOW.replace(microsecond=0) - timedelta(seconds=10)
    # 604,800 seconds were due: more than the count goes.
    assert plan.missed is not None and plan.missed.more
    assert plan.missed.count == MAX_COUNTED + 2  # (and the 2 fetched but not fired)
    assert plan.missed.first == first.replace(microsecond=0)
    assert plan.missed.last == caught[0].at - timedelta(seconds=1)
    skip = plan_tick(EVERY_SECOND, first.replace(microsecond=0), NOW, catchup="skip", grace=10)
    assert len(skip.fires) == 10 and skip.missed is not None and skip.missed.more


def test_missed_times_are_counted_after_a_downtime_of_days() -> None:
    daily = CronSchedule("0 3 * * *")
    first = datetime(2024, 1, 1, 3, tzinfo=UTC)
    plan = plan_tick(daily, first, NOW, catchup="all", grace=10)
    # 2024-01-01 to 2024-06-01: 153 mornings; the latest 100 fire.
    assert len(plan.fires) == MAX_CATCHUP
    assert plan.fires[-1].at == datetime(2024, 6, 1, 3, tzinfo=UTC)
    assert plan.missed is not None
    assert (plan.missed.count, plan.missed.more) == (53, False)
    assert (plan.missed.first, plan.missed.last) == (first, datetime(2024, 2, 22, 3, tzinfo=UTC))


def test_dst_in_berlin_fires_as_the_cron_docs_say() -> None:
    """Spring forward (2024-03-31, 02:00 → 03:00): a job at 02:30 fires once at 03:00, the end of
    the gap. Fall back (2024-10-27, 03:00 → 02:00): it fires once, at the first 02:30; a job with
    a step hour fires at both 02:30s. All planned times are those the Rust cron gives."""
    nightly = CronSchedule("30 2 * * *", tz="Europe/Berlin")
    spring = plan_tick(
        nightly,
        datetime(2024, 3, 30, 2, 30, tzinfo=BERLIN).astimezone(UTC),
        datetime(2024, 4, 1, 12, tzinfo=UTC),
        catchup="all",
        grace=10,
    )
    assert [f.at.astimezone(BERLIN).isoformat() for f in spring.fires] == [
        "2024-03-30T02:30:00+01:00",
        "2024-03-31T03:00:00+02:00",
        "2024-04-01T02:30:00+02:00",
    ]
    autumn = plan_tick(
        nightly,
        datetime(2024, 10, 26, 23, tzinfo=UTC),
        datetime(2024, 10, 27, 12, tzinfo=UTC),
        catchup="all",
        grace=10,
    )
    assert [f.at.isoformat() for f in autumn.fires] == ["2024-10-27T00:30:00+00:00"]
    half_hourly = CronSchedule("30 */1 * * *", tz="Europe/Berlin")
    both = plan_tick(
        half_hourly,
        datetime(2024, 10, 26, 23, 45, tzinfo=UTC),
        datetime(2024, 10, 27, 1, 45, tzinfo=UTC),
        catchup="all",
        grace=10,
    )
    assert [f.at.isoformat() for f in both.fires] == [
        "2024-10-27T00:30:00+00:00",  # 02:30 CEST
        "2024-10-27T01:30:00+00:00",  # 02:30 CET
    ]
