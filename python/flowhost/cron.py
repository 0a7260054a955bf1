"""Cron schedules: next and previous fire times in an IANA time zone, with Vixie cron's rules.

```python
from datetime import datetime, UTC
from flowhost.cron import CronSchedule

schedule = CronSchedule("30 2 * * *", tz="America/New_York")
schedule.next_after(datetime(2024, 3, 9, 12, tzinfo=UTC), count=2)
```

See docs/cron.md for the syntax and the choices where cron implementations disagree (DST, the
day-of-month/day-of-week OR, `L` and `#`). The work is done in the Rust core.
"""

from flowhost._core import CronSchedule
from flowhost.errors import CronSyntaxError

__all__ = ["CronSchedule", "CronSyntaxError"]
