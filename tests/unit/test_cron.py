"""flowhost.cron.CronSchedule: the Python API, DST rules, errors, and a fuzz of the parser."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowhost import FlowhostError
from flowhost.cron import CronSchedule, CronSyntaxError

NEW_YORK = ZoneInfo("America/New_York")


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


def test_next_after_returns_aware_datetimes_in_the_zone_strictly_after_start() -> None:
    schedule = CronSchedule("*/15 * * * *", tz="Europe/Berlin")
    start = utc(2024, 5, 1, 10, 0)  # 12:00 in Berlin, itself a fire time
    fires = schedule.next_after(start, count=3)
    assert fires == [start + timedelta(minutes=15 * n) for n in (1, 2, 3)]
    assert all(fire.tzinfo == ZoneInfo("Europe/Berlin") for fire in fires)
    assert fires[0].hour == 12 and fires[0].minute == 15
    assert schedule.next_after(start - timedelta(microseconds=1)) == [start]
    assert schedule.previous_before(start, count=2) == [
        start - timedelta(minutes=15),
        start - timedelta(minutes=30),
    ]
    assert schedule.previous_before(start + timedelta(microseconds=1)) == [start]


def test_default_zone_is_utc_and_names_are_canonical() -> None:
    assert CronSchedule("@daily").tz == "UTC"
    assert CronSchedule("@daily", "europe/berlin").tz == "Europe/Berlin"
    assert CronSchedule("@daily").next_after(utc(2024, 1, 1, 5))[0].tzinfo == ZoneInfo("UTC")


def test_start_in_any_zone_or_fixed_offset() -> None:
    schedule = CronSchedule("0 9 * * *", tz="Asia/Tokyo")
    start = datetime(2024, 6, 1, 0, 0, tzinfo=timezone(timedelta(hours=-7)))  # 16:00 Tokyo
    (fire,) = schedule.next_after(start)
    assert fire == datetime(2024, 6, 2, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))


def test_spring_forward_fixed_hour_fires_once_at_the_end_of_the_gap() -> None:
    schedule = CronSchedule("30 2 * * *", tz="America/New_York")
    fires = schedule.next_after(utc(2024, 3, 9, 12), count=2)
    assert [fire.astimezone(UTC) for fire in fires] == [
        utc(2024, 3, 10, 7),
        utc(2024, 3, 11, 6, 30),
    ]
    assert (fires[0].hour, fires[0].minute) == (3, 0)


def test_fall_back_fixed_hour_fires_once_and_wildcard_hour_twice() -> None:
    fixed = CronSchedule("30 1 * * *", tz="America/New_York").next_after(utc(2024, 11, 3), count=2)
    assert [fire.astimezone(UTC) for fire in fixed] == [
        utc(2024, 11, 3, 5, 30),
        utc(2024, 11, 4, 6, 30),
    ]
    hourly = CronSchedule("30 * * * *", tz="America/New_York").next_after(
        utc(2024, 11, 3, 5), count=2
    )
    assert [fire.astimezone(UTC) for fire in hourly] == [
        utc(2024, 11, 3, 5, 30),
        utc(2024, 11, 3, 6, 30),
    ]
    assert [(fire.hour, fire.minute, fire.fold) for fire in hourly] == [(1, 30, 0), (1, 30, 1)]


def test_matches_is_exact() -> None:
    schedule = CronSchedule("0 9 * * MON-FRI", tz="America/New_York")
    assert schedule.matches(datetime(2024, 9, 2, 9, tzinfo=NEW_YORK))
    assert not schedule.matches(datetime(2024, 9, 2, 9, 0, 1, tzinfo=NEW_YORK))
    assert not schedule.matches(datetime(2024, 9, 2, 9, 0, 0, 1, tzinfo=NEW_YORK))
    assert not schedule.matches(datetime(2024, 9, 1, 9, tzinfo=NEW_YORK))  # a Sunday
    assert schedule.matches(datetime(2024, 9, 2, 13, tzinfo=UTC))


def test_extensions_and_leap_days() -> None:
    start = utc(2024, 1, 1)
    assert CronSchedule("0 0 L 2 *").next_after(start)[0] == utc(2024, 2, 29)
    assert CronSchedule("0 0 * * 5L").next_after(start)[0] == utc(2024, 1, 26)
    assert CronSchedule("0 0 * * fri#2").next_after(start)[0] == utc(2024, 1, 12)
    assert CronSchedule("0 0 29 2 *").next_after(utc(2024, 3, 1))[0] == utc(2028, 2, 29)
    assert CronSchedule("0 0 0 1 1 *").previous_before(start)[0] == utc(2023, 1, 1)


def test_one_value_ranges_are_that_value() -> None:
    start = utc(2000, 1, 1)  # a Saturday
    for single, plain in [("* * * * 0-0", "* * * * 0"), ("0 0 * 2-2/1 *", "0 0 * 2 *")]:
        assert CronSchedule(single).next_after(start, count=3) == CronSchedule(plain).next_after(
            start, count=3
        )


def test_describe() -> None:
    schedule = CronSchedule("*/15 9-17 * * MON-FRI", tz="Europe/Berlin")
    assert schedule.describe() == (
        "every 15 minutes, during hours 9 through 17, on Monday through Friday (Europe/Berlin)"
    )


def test_value_semantics_and_pickle() -> None:
    schedule = CronSchedule("0 9 * * *", tz="Europe/Berlin")
    assert schedule == CronSchedule("0 9 * * *", "Europe/Berlin")
    assert schedule != CronSchedule("0 9 * * *", "UTC")
    assert hash(schedule) == hash(CronSchedule("0 9 * * *", "Europe/Berlin"))
    assert pickle.loads(pickle.dumps(schedule)) == schedule
    assert repr(schedule) == 'CronSchedule("0 9 * * *", tz="Europe/Berlin")'
    assert schedule.expression == "0 9 * * *"
    assert type(schedule).__module__ == "flowhost.cron"


@pytest.mark.parametrize(
    ("expression", "field", "token"),
    [
        ("0 0 30 2 *", "day-of-month", "30"),
        ("61 * * * *", "minute", "61"),
        ("* * * JANUARY *", "month", "JANUARY"),
        ("* * * * 1#6", "day-of-week", "1#6"),
        ("* * * *", "expression", "* * * *"),
        ("@reboot", "expression", "@reboot"),
        ("*/0 * * * *", "minute", "*/0"),
        ("0 5-1 * * *", "hour", "5-1"),
        ("", "expression", ""),
    ],
)
def test_invalid_expressions_raise_cron_syntax_error(
    expression: str, field: str, token: str
) -> None:
    with pytest.raises(CronSyntaxError) as raised:
        CronSchedule(expression)
    assert (raised.value.field, raised.value.token) == (field, token)
    assert raised.value.expression == expression
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, FlowhostError)
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (type(copy), str(copy), copy.field, copy.token) == (
        CronSyntaxError,
        str(raised.value),
        field,
        token,
    )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"unknown time zone .Mars/Olympus."):
        CronSchedule("* * * * *", tz="Mars/Olympus")
    with pytest.raises(TypeError, match="expression must be str, not int"):
        CronSchedule(5)  # type: ignore[arg-type]
    schedule = CronSchedule("* * * * *")
    with pytest.raises(ValueError, match="aware datetime"):
        schedule.next_after(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="aware datetime"):
        schedule.matches(datetime(2024, 1, 1))
    with pytest.raises(TypeError, match="start must be a datetime, not str"):
        schedule.next_after("2024-01-01")  # type: ignore[arg-type]
    for count in (0, -1, 10_001):
        with pytest.raises(ValueError, match="count must be 1 to 10000"):
            schedule.next_after(utc(2024, 1, 1), count=count)
    assert len(schedule.next_after(utc(2024, 1, 1), count=10_000)) == 10_000


def test_the_ends_of_the_datetime_range() -> None:
    yearly = CronSchedule("@yearly", "America/New_York")
    assert yearly.next_after(datetime(9999, 6, 1, tzinfo=UTC), count=3) == []
    # 0001-01-01 00:00 in New York (local mean time, -4:56:02) is 04:56:02 UTC.
    assert yearly.previous_before(datetime(1, 1, 1, 4, 56, 2, tzinfo=UTC)) == []
    assert yearly.previous_before(datetime(1, 1, 1, 4, 56, 3, tzinfo=UTC))[0].year == 1
    assert yearly.next_after(datetime.min.replace(tzinfo=UTC))[0].year == 1
    assert yearly.previous_before(datetime.max.replace(tzinfo=UTC))[0].year == 9999


CRON_ALPHABET = "0123456789*/,-#?LW@ \tJANFEBMONfri" + "\x00é"


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=CRON_ALPHABET, max_size=40)))
def test_random_text_parses_or_raises_cron_syntax_error(expression: str) -> None:
    try:
        schedule = CronSchedule(expression)
    except CronSyntaxError:
        return
    fires = schedule.next_after(utc(2024, 1, 1), count=2)
    assert all(fire > utc(2024, 1, 1) for fire in fires)
    assert schedule.previous_before(utc(2024, 1, 1))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"]),
    st.sampled_from(["30 2 * * *", "*/20 * * * *", "0 1 * * 0", "15 */2 * * *", "0 0 L * *"]),
    st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2060, 1, 1)),
)
def test_next_and_previous_are_inverse(zone: str, expression: str, start: datetime) -> None:
    schedule = CronSchedule(expression, zone)
    start = start.replace(tzinfo=UTC)
    (fire,) = schedule.next_after(start)
    (back,) = schedule.previous_before(fire)
    assert back <= start < fire
    assert schedule.next_after(back) == [fire]
    assert schedule.matches(fire)
