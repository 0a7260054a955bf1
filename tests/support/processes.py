"""Which child processes a test left behind.

The test process has children that outlive any one test on purpose: the session's brokers
(tests/conftest.py) are started once and stopped at the end of the session. A leak check
therefore compares against the children that existed when the test began, each known by its
pid and its start time (a pid alone could be reused by a new child once an old one is reaped).
"""

from __future__ import annotations

import os
from pathlib import Path


def children_of(pid: int) -> set[tuple[int, int]]:
    """The live (or not yet reaped) children of `pid`, as (pid, start time in clock ticks)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces: the fields follow its last ")".
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.add((int(entry.name), int(fields[19])))
    return found


class ChildrenWatch:
    """The children of this process started since the watch was made."""

    def __init__(self) -> None:
        self.before = children_of(os.getpid())

    def started_since(self) -> list[int]:
        return sorted(pid for pid, _ in children_of(os.getpid()) - self.before)
