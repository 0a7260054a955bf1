"""Rust core of flowhost. Private: import from ``flowhost`` instead.

Built from ``core-rs/`` by maturin. This stub is written by hand and checked against the built
module with ``python -m mypy.stubtest flowhost._core``.
"""

import uuid
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal, TypeAlias, final

# PyO3 lists every name it adds to the module in `__all__`.
__all__ = [
    "CronSchedule",
    "Decision",
    "InvalidArgumentError",
    "RateLimiter",
    "TriggerIndex",
    "__version__",
    "build_info",
    "encode_events",
    "ready_steps",
    "step_progress",
]

__version__: Final[str]
"""The version of the Rust core, e.g. ``"0.1.0"``."""

class InvalidArgumentError(ValueError):
    """An argument has the right type but a value flowhost's core cannot use."""

def build_info() -> dict[str, str]:
    """The version, compiler, target and profile this extension was built with.

    Returns a new dict with exactly these keys:

    - ``version``: the crate version, e.g. ``"0.1.0"``;
    - ``rustc``: the compiler's ``--version`` line, e.g. ``"rustc 1.85.0 (4d91de4e4 2025-02-17)"``;
    - ``target``: the target triple, e.g. ``"x86_64-unknown-linux-gnu"``;
    - ``profile``: ``"release"`` for optimised builds, ``"debug"`` otherwise.
    """

def encode_events(
    events: Sequence[tuple[uuid.UUID, str, str | None, int | None, Any]],
) -> bytes:
    """Encodes events as one binary ``COPY`` stream for ``flowhost.events``.

    The stream fills the columns ``run_id, type, step, attempt, data`` and carries its own header
    and trailer: write it whole to ``COPY flowhost.events (run_id, type, step, attempt, data)
    FROM STDIN (FORMAT BINARY)``.

    Args:
        events: ``(run_id, type, step, attempt, data)`` tuples. ``data`` is JSON data made of
            ``dict`` (with ``str`` keys), ``list``, ``tuple``, ``str``, ``int``, ``float``,
            ``bool`` and ``None``, nested at most 256 levels; it is serialised here, as
            ``json.dumps`` would with ``allow_nan=False``.

    Returns:
        The stream, header to trailer.

    Raises:
        TypeError: an event is not a 5-tuple, a field has the wrong type, or ``data`` holds a value
            that is not JSON data (the message gives the event's index and the path in ``data``).
        ValueError: ``attempt`` does not fit in 32 bits, a float is NaN or infinite, or ``data`` is
            nested too deeply (or contains itself).
        InvalidArgumentError: a string holds a NUL character (Postgres ``text`` and ``jsonb``
            cannot store it) or a lone surrogate.
    """

def ready_steps(
    subscriptions: Mapping[str, Sequence[str]],
    emitted: Collection[str],
    scheduled: Collection[str],
) -> list[str]:
    """The steps of a run that can be scheduled now, sorted by name (AND-join readiness).

    A step is ready when it is not in ``scheduled``, subscribes to at least one event name, and
    every name it subscribes to is in ``emitted``. Steps that subscribe to nothing are entry steps
    and are never returned. Subscribing to a name twice counts once.

    Args:
        subscriptions: each step of the flow, mapped to the event names it subscribes to. Any
            mapping works; each value may be any iterable of ``str`` except a ``str`` itself.
        emitted: the event names emitted so far in the run; any iterable of ``str`` except a
            ``str`` itself (a ``set`` or ``frozenset`` is typical).
        scheduled: the steps already scheduled in the run (running, finished, or skipped); any
            iterable of ``str`` except a ``str`` itself.

    Returns:
        A new list of the ready steps' names, sorted by code point (``sorted()`` order). The items
        are the key objects of ``subscriptions`` themselves, not copies.

    Raises:
        TypeError: ``subscriptions`` is not a mapping, a collection is a ``str``, ``bytes`` or not
            iterable, or a step or event name is not a ``str``.
        InvalidArgumentError: a step or event name contains a lone surrogate (it has no UTF-8 form).
    """

_Strategy: TypeAlias = Literal["gcra", "fixed_window", "moving_window", "sliding_window_counter"]

@final
class CronSchedule:
    """A cron expression bound to an IANA time zone (re-exported as ``flowhost.cron.CronSchedule``).

    Five fields (minute hour day-of-month month day-of-week), six with the seconds first, or a
    macro (``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight``,
    ``@hourly``). Fields take ``*``, values, names (``JAN``, ``mon``, any case), lists, ranges,
    steps (``*/15``, ``1-30/2``, ``5/10``); 0 and 7 are Sunday; ``?`` means ``*`` in the two day
    fields; day-of-month takes ``L`` and ``L-n``, day-of-week ``5L`` (last Friday) and ``5#2``
    (second Friday). When both day fields are restricted (neither starts with ``*`` or ``?``), a
    day matching either one fires (Vixie cron). DST: a fixed-hour job whose time falls in a
    spring-forward gap fires once when the gap ends, and once (the first time) in a repeated
    hour; jobs with a wildcard or step hour follow real time. See docs/cron.md.

    Raises:
        flowhost.errors.CronSyntaxError: the expression is invalid or can never fire; its
            ``field`` and ``token`` name the culprit.
        InvalidArgumentError: ``tz`` is not an IANA time zone name.
        TypeError: ``expression`` or ``tz`` is not a ``str``.
    """

    def __new__(cls, expression: str, tz: str | None = None) -> CronSchedule:
        """Parse ``expression`` for the zone ``tz`` (``"UTC"`` when ``None``)."""

    @property
    def expression(self) -> str:
        """The expression as given."""

    @property
    def tz(self) -> str:
        """The time zone's IANA name as the database spells it (``"europe/berlin"`` gives
        ``"Europe/Berlin"``)."""

    def next_after(self, start: datetime, count: int = 1) -> list[datetime]:
        """The next ``count`` fire times strictly after ``start``, earliest first.

        ``start`` must be an aware datetime (any tzinfo); the results are aware datetimes in the
        schedule's zone (``zoneinfo.ZoneInfo(tz)``, with ``fold=1`` for the second occurrence of
        a repeated wall-clock time). The list is shorter than ``count`` only when the schedule
        has no more fire times before the year 10000.

        Raises:
            TypeError: ``start`` is not a datetime, or ``count`` not an int.
            ValueError: ``start`` is naive, or ``count`` is not 1 to 10,000
                (``InvalidArgumentError``).
        """

    def previous_before(self, start: datetime, count: int = 1) -> list[datetime]:
        """The previous ``count`` fire times strictly before ``start``, latest first.

        Like :meth:`next_after` backwards; the list is shorter than ``count`` only when the
        schedule has no more fire times after the start of year 1.
        """

    def matches(self, dt: datetime) -> bool:
        """Whether the aware datetime ``dt`` is exactly a fire time (to the microsecond).

        Raises:
            TypeError: ``dt`` is not a datetime.
            ValueError: ``dt`` is naive.
        """

    def describe(self) -> str:
        """The schedule in English, e.g. ``"at 09:00, on Monday through Friday (UTC)"``."""

    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[type[CronSchedule], tuple[str, str]]: ...

@final
class Decision:
    """What one hit decided. Truthy when the hit was allowed.

    Attributes:
        allowed: whether the hit was allowed (and, for ``hit``, counted).
        limit: the most cost the key admits at once: ``limit``, or ``burst + 1`` for GCRA.
        remaining: the cost the key would still admit now, after this hit.
        retry_after: seconds until the same hit would be allowed; ``-1.0`` when it was allowed,
            ``math.inf`` when its cost exceeds ``limit`` (it never will be).
        reset_after: seconds until the key is back to full capacity (``remaining == limit``);
            ``0.0`` when it is.
    """

    def __new__(
        cls,
        *,
        allowed: bool,
        limit: int,
        remaining: int,
        retry_after: float,
        reset_after: float,
    ) -> Decision: ...
    @property
    def allowed(self) -> bool: ...
    @property
    def limit(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def reset_after(self) -> float: ...
    def __bool__(self) -> bool: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: None  # type: ignore[assignment]

@final
class RateLimiter:
    """A rate limiter over many keys, by one strategy; safe to share between threads.

    Args:
        strategy: ``"gcra"``, ``"fixed_window"``, ``"moving_window"`` or
            ``"sliding_window_counter"``.
        limit: the most cost admitted per period, from 1 to 10**12 (GCRA: the sustained rate).
        period: the period in seconds, from 1 ns to 2**63 ns (about 292 years).
        burst: GCRA only: its ``max_burst`` (a fresh key admits ``burst + 1`` at once); ``None``
            means ``limit - 1``. The windows take no burst.

    Raises:
        TypeError: an argument has the wrong type (``bool`` is not taken as an ``int``).
        InvalidArgumentError: an unknown strategy, a value out of range, or a burst for a window.
    """

    def __new__(
        cls,
        strategy: _Strategy,
        limit: int,
        period: float,
        burst: int | None = None,
    ) -> RateLimiter: ...
    def hit(self, key: str, cost: int = 1, now: float | None = None) -> Decision:
        """Decides a hit of ``cost`` on ``key`` at ``now`` and counts it if allowed.

        ``now`` is in seconds since the Unix epoch; ``None`` reads the wall clock. A ``cost`` of 0
        only reports. A refused hit counts nothing.

        Raises:
            TypeError: ``key`` is not a ``str``, ``cost`` not an ``int``, ``now`` not a number.
            InvalidArgumentError: ``cost`` is negative, ``now`` is not finite or out of range, or
                ``key`` contains a lone surrogate.
        """

    def test(self, key: str, cost: int = 1, now: float | None = None) -> bool:
        """Whether ``hit(key, cost, now)`` would be allowed; counts nothing."""

    def allow(self, key: str, cost: int = 1, now: float | None = None) -> bool:
        """``hit(key, cost, now).allowed``, without building a ``Decision``."""

    def hit_many(
        self, keys: Iterable[str], costs: Iterable[int] | None = None, now: float | None = None
    ) -> list[bool]:
        """Hits each key in turn at one time ``now``; whether each hit was allowed.

        A key given twice is hit twice, in order. ``costs`` has one cost per key (default 1 each).
        Every argument is checked before the first hit, so an error counts nothing.

        Raises:
            TypeError: ``keys`` or ``costs`` is not iterable (or is a ``str`` or bytes), or an item
                has the wrong type.
            InvalidArgumentError: ``costs`` has another length than ``keys``, or an item or
                ``now`` has a bad value.
        """

    def clear(self) -> None:
        """Forgets every key."""

    def __len__(self) -> int:
        """How many keys the limiter holds state for (expired ones are dropped lazily)."""

    @property
    def strategy(self) -> _Strategy:
        """The strategy's name."""

    @property
    def limit(self) -> int:
        """The most cost admitted per period."""

    @property
    def period(self) -> float:
        """The period in seconds, as given."""

    @property
    def burst(self) -> int | None:
        """GCRA's burst (``limit - 1`` unless given); ``None`` for the windows."""

def step_progress(
    subscriptions: Mapping[str, Collection[str]],
    emits: Mapping[str, Collection[str]],
    emitted: Collection[str],
    statuses: Mapping[str, str],
) -> tuple[list[str], list[str], bool]:
    """What a run should do next: ``(ready, skipped, finished)``.

    The steps of the flow are the keys of ``subscriptions``; those not in ``statuses`` are
    unscheduled. Of those:

    - *ready*: it subscribes to at least one event and every one is in ``emitted`` (AND-join);
    - *skipped*: an event it subscribes to is not emitted, and no step that can still run may emit
      it. Steps that can still run: those in flight (queued, running or awaiting), unscheduled
      entry steps (no subscriptions; the run's input starts them), and, recursively, unscheduled
      steps whose missing events all can come from steps that can still run. Steps in a cycle
      that only they could feed are skipped.

    ``finished`` is true when no status is in flight, nothing is ready and no entry step is
    unscheduled; then every unscheduled non-entry step is in ``skipped``.

    Args:
        subscriptions: each step of the flow -> the event names it subscribes to.
        emits: each step -> the event names it may emit (``emits=``); a missing step emits
            nothing; steps not in ``subscriptions`` are ignored.
        emitted: the event names emitted so far in the run.
        statuses: each scheduled step -> ``"queued"``, ``"running"``, ``"awaiting"``,
            ``"completed"``, ``"failed"`` or ``"skipped"``. An in-flight name outside the flow
            still keeps the run from finishing.

    Returns:
        ``ready`` and ``skipped`` as new lists sorted by code point (their items are the key
        objects of ``subscriptions``), and ``finished``.

    Raises:
        TypeError: an argument has the wrong type (as for ``ready_steps``), or a status is not a
            ``str``.
        InvalidArgumentError: a status is not one of the five, or a name contains a lone
            surrogate.
    """

@final
class TriggerIndex:
    """Patterns of event names or MQTT topics, each holding values, matched against names.

    ``syntax="event"``: dot-separated names; ``*`` matches one segment, ``#`` zero or more.
    ``syntax="mqtt"``: ``/``-separated topics; ``+`` matches one level, ``#`` (last level only)
    the rest, including the parent (``sport/#`` matches ``sport``); a topic starting with ``$``
    is not matched by a leading wildcard.

    Values are any hashable objects, compared the way dict keys are. A method called while
    another runs on the same index (from another thread, or from a value's ``__eq__``) raises
    ``RuntimeError``.
    """

    def __new__(cls, *, syntax: Literal["event", "mqtt"] = "event") -> TriggerIndex:
        """An empty index; ``InvalidArgumentError`` for another ``syntax``."""

    @property
    def syntax(self) -> Literal["event", "mqtt"]:
        """The syntax of the patterns and names."""

    def add(self, pattern: str, value: Hashable) -> None:
        """Registers ``value`` under ``pattern``; registering the same pair again does nothing.

        Raises:
            flowhost.errors.PatternError: ``pattern`` is invalid (the error names the problem).
            TypeError: ``value`` is not hashable.
        """

    def remove(self, pattern: str, value: Hashable) -> bool:
        """Unregisters ``value`` from ``pattern``; returns whether it was registered there.

        Raises:
            flowhost.errors.PatternError: ``pattern`` is invalid.
        """

    def match(self, name: str) -> list[Hashable]:
        """The values whose patterns match ``name``, each once, in registration order.

        A value registered under several matching patterns comes at the place of its earliest
        matching registration.

        Raises:
            flowhost.errors.EventNameError: ``name`` is empty or contains a wildcard (``*``/``#``,
                or ``+``/``#`` for MQTT), or, for events, has an empty segment.
        """

    def patterns(self) -> list[str]:
        """The patterns holding at least one value, sorted by code point."""

    def registrations(self) -> list[tuple[str, Hashable]]:
        """Every ``(pattern, value)`` registration, in registration order."""

    def __len__(self) -> int:
        """The number of ``(pattern, value)`` registrations."""
