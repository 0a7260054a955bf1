"""In-process rate-limit decisions from Python: flowhost.ratelimit next to the `limits` library.

Per strategy, 1,000 keys hit round-robin in a plain single-threaded loop, with `now` read from the
wall clock on both sides (`limits` reads `time.time()` itself). Two quotas: one that admits every
hit (1,000,000 per minute: the common case) and one that refuses most (10 per minute). The period
is long next to the run, so both sides make the same decisions whatever their speed.

Rows per strategy, each measured side by side in the same repetition:
- `<strategy>_hit_per_s`, `<strategy>_hit_refusing_per_s`: `RateLimiter.hit` (a `Decision` per
  call) against `limits`'s `hit` (a bool), same strategy (GCRA: `limits` has none, so its cheapest
  strategy, the fixed window, stands in);
- `<strategy>_allow_per_s`: `RateLimiter.allow` (a bool) against the same `limits` `hit`;
- `<strategy>_test_per_s`: `RateLimiter.test` against `limits`'s `test`;
- `<strategy>_hit_many_per_s`: `RateLimiter.hit_many` over the same keys in batches of 1,000
  against our own per-call `hit` loop (`flowhost_hit_loop`), the baseline a batch must beat.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import limits
import limits.storage
import limits.strategies

from bench.harness import Context, Measurement
from flowhost.ratelimit import RateLimiter

NAME = "ratelimit"
DESCRIPTION = "in-process rate-limit decisions/s from Python vs the limits library (MemoryStorage)"

KEYS = [f"user:{index}" for index in range(1_000)]
BATCH = 1_000
PERIOD = 60
ALLOWING = 1_000_000
REFUSING = 10

LIMITS_STRATEGIES: dict[str, type[limits.strategies.RateLimiter]] = {
    "gcra": limits.strategies.FixedWindowRateLimiter,
    "fixed_window": limits.strategies.FixedWindowRateLimiter,
    "moving_window": limits.strategies.MovingWindowRateLimiter,
    "sliding_window_counter": limits.strategies.SlidingWindowCounterRateLimiter,
}


async def run(ctx: Context) -> list[Measurement]:
    ours_calls = ctx.size(1_000_000, quick=100_000)
    # `limits` is several times slower: fewer calls keep each repetition short.
    their_calls = ctx.size(200_000, quick=20_000)
    keys = (KEYS * (ours_calls // len(KEYS) + 1))[:ours_calls]
    their_keys = keys[:their_calls]
    measurements = []
    for strategy, anchor_class in LIMITS_STRATEGIES.items():
        anchor = f"limits_{anchor_class.__name__}"
        rows = {
            "hit": (_per_s(keys, _ours(strategy, ALLOWING, "hit")),
                    _limits_per_s(their_keys, _theirs(anchor_class, ALLOWING, "hit"))),
            "hit_refusing": (_per_s(keys, _ours(strategy, REFUSING, "hit")),
                             _limits_per_s(their_keys, _theirs(anchor_class, REFUSING, "hit"))),
            "allow": (_per_s(keys, _ours(strategy, ALLOWING, "allow")),
                      _limits_per_s(their_keys, _theirs(anchor_class, ALLOWING, "hit"))),
            "test": (_per_s(keys, _ours(strategy, ALLOWING, "test")),
                     _limits_per_s(their_keys, _theirs(anchor_class, ALLOWING, "test"))),
        }  # fmt: skip
        for operation, (value, anchor_value) in rows.items():
            measurements.append(
                Measurement(
                    f"{strategy}_{operation}_per_s",
                    value,
                    "decisions/s",
                    anchor=f"{anchor}.{'test' if operation == 'test' else 'hit'}",
                    anchor_value=anchor_value,
                )
            )
        batched = _hit_many_per_s(strategy, keys)
        loop = _per_s(keys, _ours(strategy, ALLOWING, "hit"))
        measurements.append(
            Measurement(
                f"{strategy}_hit_many_per_s",
                batched,
                "decisions/s",
                anchor="flowhost_hit_loop",
                anchor_value=loop,
            )
        )
        ctx.log(
            f"{strategy}: hit {rows['hit'][0]:,.0f}/s vs {anchor} {rows['hit'][1]:,.0f}/s, "
            f"hit_many {batched:,.0f}/s"
        )
    return measurements


def _ours(strategy: str, limit: int, method: str) -> Callable[[str], object]:
    limiter = RateLimiter(strategy, limit, float(PERIOD))
    bound: Callable[[str], object] = getattr(limiter, method)
    return bound


def _theirs(
    strategy: type[limits.strategies.RateLimiter], limit: int, method: str
) -> tuple[Callable[[limits.RateLimitItem, str], bool], limits.RateLimitItem]:
    limiter = strategy(limits.storage.MemoryStorage())
    return getattr(limiter, method), limits.RateLimitItemPerMinute(limit)


def _per_s(keys: list[str], decide: Callable[[str], object]) -> float:
    started = time.perf_counter()
    for key in keys:
        decide(key)
    return len(keys) / (time.perf_counter() - started)


def _limits_per_s(
    keys: list[str],
    decide_and_item: tuple[Callable[[limits.RateLimitItem, str], bool], limits.RateLimitItem],
) -> float:
    # The same loop as ours, with `limits`'s own call shape (no wrapper to slow it down).
    decide, item = decide_and_item
    started = time.perf_counter()
    for key in keys:
        decide(item, key)
    return len(keys) / (time.perf_counter() - started)


def _hit_many_per_s(strategy: str, keys: list[str]) -> float:
    limiter = RateLimiter(strategy, ALLOWING, float(PERIOD))
    batches = [keys[start : start + BATCH] for start in range(0, len(keys), BATCH)]
    hit_many = limiter.hit_many
    started = time.perf_counter()
    for batch in batches:
        hit_many(batch)
    return len(keys) / (time.perf_counter() - started)
