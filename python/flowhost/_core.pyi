"""Rust core of flowhost. Private: import from ``flowhost`` instead.

Built from ``core-rs/`` by maturin. This stub is written by hand and checked against the built
module with ``python -m mypy.stubtest flowhost._core``.
"""

from collections.abc import Collection, Mapping, Sequence
from typing import Final

# PyO3 lists every name it adds to the module in `__all__`.
__all__ = ["InvalidArgumentError", "__version__", "build_info", "ready_steps"]

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
