"""CronSchedule against the npm packages cron-parser and croner (tests/oracles/cron/).

One batch of hypothesis-drawn cases goes through `node tests/oracles/cron/next.mjs`; each
library's answers are compared where the behaviour is agreed (docs/cron.md):

- zones without DST only (UTC, Asia/Tokyo, Asia/Kolkata): the DST rules differ between all four
  implementations and are tested on their own in test_cron.py;
- a day field with a ``*`` that is not just ``*`` (``*/2``, ``*/3,4``) next to a restricted other
  day field: Vixie cron (and flowhost) count a field starting with ``*`` as unrestricted and AND
  the two; croner ORs whenever neither is exactly ``*``, and cron-parser does too once such a
  field is a list; those cases are not compared;
- one-value ranges (``5-5``) are left out, as in test_cron_oracles.py;
- an expression a library refuses (cron-parser refuses some large steps such as ``*/41`` in the
  minutes, which Vixie cron accepts as ``0,41``) is not compared with that library.

`make install` installs the packages; without node or them the test is skipped with the reason.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowhost.cron import CronSchedule

ORACLES = Path(__file__).resolve().parents[1] / "oracles" / "cron"
ZONES = ["UTC", "Asia/Tokyo", "Asia/Kolkata"]
COUNT = 4
CASES = 600

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ORACLES / "node_modules" / "croner").is_dir(),
    reason="node and tests/oracles/cron/node_modules are installed by `make install`",
)


def random_field(chooser: random.Random, low: int, high: int) -> str:
    if chooser.random() < 0.3:
        return "*"
    items = []
    for _ in range(chooser.randint(1, 3)):
        kind = chooser.randrange(4)
        if kind == 0:
            items.append(str(chooser.randint(low, high)))
        elif kind == 1:
            items.append(f"*/{chooser.randint(1, high - low + 1)}")
        else:
            start = chooser.randint(low, high - 1)
            end = chooser.randint(start + 1, high)
            step = f"/{chooser.randint(1, high - low + 1)}" if kind == 3 else ""
            items.append(f"{start}-{end}{step}")
    return ",".join(items)


def cases() -> list[tuple[str, str, datetime]]:
    chooser = random.Random(2024)
    drawn = []
    while len(drawn) < CASES:
        fields = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
        expression = " ".join(random_field(chooser, low, high) for low, high in fields)
        try:
            CronSchedule(expression)
        except ValueError:
            continue
        start = datetime(1995, 1, 1, tzinfo=UTC) + timedelta(
            seconds=chooser.randrange(50 * 365 * 86_400)
        )
        drawn.append((expression, chooser.choice(ZONES), start))
    return drawn


def day_fields_disagree(expression: str) -> bool:
    day, weekday = expression.split()[2], expression.split()[4]
    return day != "*" and weekday != "*" and ("*" in day or "*" in weekday)


def test_next_fire_times_agree_with_cron_parser_and_croner() -> None:
    batch = cases()
    payload = [
        {"expression": expression, "tz": zone, "start": start.isoformat(), "count": COUNT}
        for expression, zone, start in batch
    ]
    completed = subprocess.run(
        ["node", str(ORACLES / "next.mjs")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    answers = json.loads(completed.stdout)
    compared = {"cronParser": 0, "croner": 0}
    for (expression, zone, start), answer in zip(batch, answers, strict=True):
        ours = [
            fire.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for fire in CronSchedule(expression, zone).next_after(start, count=COUNT)
        ]
        if day_fields_disagree(expression):
            continue
        if isinstance(answer["cronParser"], list):
            assert answer["cronParser"] == ours, (expression, zone, start)
            compared["cronParser"] += 1
        if isinstance(answer["croner"], list):
            assert answer["croner"] == ours, (expression, zone, start)
            compared["croner"] += 1
    # cron-parser refuses steps larger than half a field (e.g. */41 in the minutes) and more.
    assert compared["cronParser"] > CASES // 5, compared
    assert compared["croner"] > CASES // 2, compared
