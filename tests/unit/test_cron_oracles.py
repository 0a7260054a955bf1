"""CronSchedule against croniter and cronsim on hypothesis-generated expressions.

Compared only where the libraries agree on the semantics (docs/cron.md, "Where implementations
disagree"); each exclusion below names the disagreement it steps around:

- croniter treats a day field that starts with ``*`` but is not ``*`` itself (``*/2``), or has
  a ``*`` item in a list, as restricted, so ``0 0 */2 * 1`` is "odd days OR Mondays" there
  (and its ``get_prev`` and ``get_next`` disagree on ``1,*/7``); Vixie cron, cronsim and
  flowhost read it as "odd days AND Mondays".
- One-value ranges (``1-1``, ``0-0/1``): croniter reads them as ``*`` in every field, cronsim
  in the weekday and month fields; flowhost reads ``a-a`` as ``a`` (test_cron.py), and the
  generated ranges here always span two values or more.
- DST: croniter and cronsim each have their own rules for gaps and repeated hours, different from
  Vixie cron's; the oracles are asked in zones without DST (UTC, Asia/Tokyo, Asia/Kolkata), and
  flowhost's DST rules are tested on their own in test_cron.py and in the Rust tests.
- ``L``, ``#`` and ``?``: croniter has no ``5L``, cronsim no ``?``; the extensions are compared
  with cronsim only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter
from cronsim import CronSim
from hypothesis import given, settings
from hypothesis import strategies as st

from flowhost.cron import CronSchedule

ZONES = ["UTC", "Asia/Tokyo", "Asia/Kolkata"]
COUNT = 4


def field(low: int, high: int) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    step = st.integers(1, high - low + 1)
    ranged = (
        st.tuples(value, value)
        .filter(lambda pair: pair[0] != pair[1])
        .map(lambda pair: f"{min(pair)}-{max(pair)}")
    )
    item = st.one_of(
        value.map(str),
        ranged,
        step.map(lambda step: f"*/{step}"),
        st.tuples(ranged, step).map(lambda pair: f"{pair[0]}/{pair[1]}"),
    )
    return st.one_of(st.just("*"), st.lists(item, min_size=1, max_size=3).map(",".join))


EXPRESSIONS = st.tuples(field(0, 59), field(0, 23), field(1, 31), field(1, 12), field(0, 7)).map(
    " ".join
)
STARTS = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2050, 1, 1))


def croniter_disagrees(expression: str) -> bool:
    """The expression uses one of croniter's known departures (see the module docstring)."""
    day, weekday = expression.split()[2], expression.split()[4]
    both_restricted = day != "*" and weekday != "*"
    return both_restricted and ("*" in day or "*" in weekday)


def ours(expression: str, zone: str, start: datetime) -> list[datetime] | None:
    try:
        schedule = CronSchedule(expression, zone)
    except ValueError:
        return None  # never fires (e.g. 0 0 30 2 *): the oracles would search forever
    return schedule.next_after(start, count=COUNT)


@settings(max_examples=400, deadline=None)
@given(EXPRESSIONS, st.sampled_from(ZONES), STARTS)
def test_next_fire_times_agree_with_croniter(expression: str, zone: str, start: datetime) -> None:
    if croniter_disagrees(expression):
        return
    start = start.replace(tzinfo=ZoneInfo(zone))
    expected = ours(expression, zone, start)
    if expected is None:
        return
    iterator = croniter(expression, start)
    assert expected == [iterator.get_next(datetime) for _ in range(COUNT)], expression


@settings(max_examples=400, deadline=None)
@given(EXPRESSIONS, st.sampled_from(ZONES), STARTS)
def test_next_fire_times_agree_with_cronsim(expression: str, zone: str, start: datetime) -> None:
    start = start.replace(tzinfo=ZoneInfo(zone))
    expected = ours(expression, zone, start)
    if expected is None:
        return
    iterator = CronSim(expression, start)
    assert expected == [next(iterator) for _ in range(COUNT)], expression


EXTENDED_DAY = st.one_of(st.just("L"), st.integers(1, 28).map(str), st.just("*"))
EXTENDED_WEEKDAY = st.one_of(
    st.integers(0, 6).map(lambda weekday: f"{weekday}L"),
    st.tuples(st.integers(0, 7), st.integers(1, 5)).map(lambda pair: f"{pair[0]}#{pair[1]}"),
    st.just("*"),
)


@settings(max_examples=300, deadline=None)
@given(EXTENDED_DAY, field(1, 12), EXTENDED_WEEKDAY, STARTS)
def test_l_and_hash_agree_with_cronsim(day: str, month: str, weekday: str, start: datetime) -> None:
    expression = f"0 12 {day} {month} {weekday}"
    start = start.replace(tzinfo=UTC)
    expected = ours(expression, "UTC", start)
    if expected is None:
        return
    iterator = CronSim(expression, start)
    assert expected == [next(iterator) for _ in range(COUNT)], expression


@settings(max_examples=200, deadline=None)
@given(EXPRESSIONS, STARTS)
def test_previous_fire_times_agree_with_croniter(expression: str, start: datetime) -> None:
    if croniter_disagrees(expression):
        return
    start = start.replace(tzinfo=UTC)
    try:
        schedule = CronSchedule(expression)
    except ValueError:
        return
    iterator = croniter(expression, start)
    expected = [iterator.get_prev(datetime) for _ in range(COUNT)]
    assert schedule.previous_before(start, count=COUNT) == expected, expression
