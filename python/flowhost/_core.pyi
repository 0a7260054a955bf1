"""Rust core of flowhost. Private: import from ``flowhost`` instead.

Built from ``core-rs/`` by maturin. This stub is written by hand and checked against the built
module with ``python -m mypy.stubtest flowhost._core``.
"""

import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

# PyO3 lists every name it adds to the module in `__all__`.
__all__ = ["InvalidArgumentError", "__version__", "build_info", "encode_events", "ready_steps"]

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
