"""TriggerIndex.match from Python vs a pure-Python scan of compiled regexes, 1k and 10k patterns.

The baseline is the straightforward pure-Python index: one compiled regex per pattern, kept in
registration order and tried in turn for every name, values deduplicated in order. It returns
exactly what `TriggerIndex.match` returns (checked on a sample before timing), so the two rates
compare the same answer. Its cost grows with the number of patterns; the trie's grows with the
name's segments.

Patterns look like a deployment's: `domainN.entityM.actionK` names, one in eight with `*`, one
in sixteen ending in `#`. Each side matches names in a loop for a fixed time budget.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Hashable

from bench.harness import Context, Measurement
from flowhost.triggers import TriggerIndex

NAME = "trigger_match"
DESCRIPTION = "TriggerIndex.match (Rust trie) vs a Python loop over one compiled regex per pattern"

BASELINE = "python_regex_scan"


def patterns(count: int) -> list[str]:
    """`count` event patterns over `count / 10` domains (the same shape as the criterion bench)."""
    domains = max(count // 10, 1)
    result = []
    for i in range(count):
        domain, entity, action = f"domain{i % domains}", f"entity{(i // 7) % 50}", f"action{i % 5}"
        kind = i % 16
        if kind == 0:
            result.append(f"{domain}.#")
        elif kind in (1, 9):
            result.append(f"{domain}.*.{action}")
        elif kind == 2:
            result.append(f"{domain}.{entity}.*")
        else:
            result.append(f"{domain}.{entity}.{action}")
    return result


def names(count: int) -> list[str]:
    domains = max(count // 10, 1)
    return [f"domain{(i * 7) % domains}.entity{i % 50}.action{i % 5}" for i in range(1024)]


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """The event pattern as a regex over `"." + name`: with a dot before every segment, `#` is
    simply any number of dotted segments, zero included."""
    pieces = []
    for segment in pattern.split("."):
        if segment == "#":
            pieces.append(r"(?:\.[^.]+)*")
        elif segment == "*":
            pieces.append(r"\.[^.]+")
        else:
            pieces.append(re.escape("." + segment))
    return re.compile("".join(pieces))


class RegexScan:
    """The baseline index: every pattern's regex tried in registration order."""

    def __init__(self) -> None:
        self._entries: list[tuple[Callable[[str], re.Match[str] | None], Hashable]] = []

    def add(self, pattern: str, value: Hashable) -> None:
        self._entries.append((pattern_regex(pattern).fullmatch, value))

    def match(self, name: str) -> list[Hashable]:
        dotted = "." + name
        found: dict[Hashable, None] = {}
        for fullmatch, value in self._entries:
            if fullmatch(dotted) is not None:
                found.setdefault(value, None)
        return list(found)


def rate(match: Callable[[str], list[Hashable]], sample: list[str], budget: float) -> float:
    """Matches per second of `match` over `sample`, looping until `budget` seconds have passed."""
    done = 0
    started = time.perf_counter()
    while True:
        for name in sample:
            match(name)
        done += len(sample)
        elapsed = time.perf_counter() - started
        if elapsed >= budget:
            return done / elapsed


async def run(ctx: Context) -> list[Measurement]:
    budget = 0.2 if ctx.quick else 1.0
    measurements = []
    for count in (1_000, 10_000):
        index, scan = TriggerIndex(), RegexScan()
        for value, pattern in enumerate(patterns(count)):
            index.add(pattern, value)
            scan.add(pattern, value)
        sample = names(count)
        for name in sample[:64]:
            if index.match(name) != scan.match(name):
                raise RuntimeError(f"the two indexes disagree on {name!r}")
        # The baseline gets fewer names per pass: at 10k patterns one match takes milliseconds.
        flowhost = rate(index.match, sample, budget)
        baseline = rate(scan.match, sample[: max(1, 16_000 // count)], budget)
        ctx.log(f"{count} patterns: {flowhost:,.0f} vs {baseline:,.0f} matches/s")
        measurements.append(
            Measurement(
                f"matches_per_s_{count // 1000}k_patterns",
                flowhost,
                "matches/s",
                anchor=BASELINE,
                anchor_value=baseline,
            )
        )
    return measurements
