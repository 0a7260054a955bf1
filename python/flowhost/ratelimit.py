"""In-process rate limiting: GCRA, fixed window, moving window and sliding-window counter.

```python
from flowhost.ratelimit import RateLimiter

limiter = RateLimiter("gcra", limit=100, period=60.0)  # 100 per minute, 100 at once
decision = limiter.hit("user:42")
if not decision:
    print(f"retry in {decision.retry_after:.1f} s")
```

The decisions are made in the Rust core; see docs/ratelimit.md for each strategy's semantics.
"""

from typing import Literal

from flowhost._core import Decision, RateLimiter

Strategy = Literal["gcra", "fixed_window", "moving_window", "sliding_window_counter"]
"""The names ``RateLimiter`` accepts as its ``strategy``."""

__all__ = ["Decision", "RateLimiter", "Strategy"]
