"""The realtime fan-out's pure parts: announcements, range merging, duplicate ids, bounded
subscriptions, SSE frames."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

from flowhost.api.routes.streams import end_frame, frames, resume_point
from flowhost.realtime.fanout import (
    MAX_RANGES,
    StreamEvent,
    Subscription,
    merge_ranges,
    parse_announcement,
)
from flowhost.realtime.follow import SEEN_WINDOW, SeenIds

RUN = uuid.UUID(int=7)


def event(ident: int, kind: str = "log", data: object = None) -> StreamEvent:
    return StreamEvent(ident, RUN, "f", kind, "s", 1, datetime(2026, 1, 1, tzinfo=UTC), data or {})


def test_announcements_are_id_ranges() -> None:
    assert parse_announcement("12:15") == (12, 15)
    assert parse_announcement("7:7") == (7, 7)
    for bad in ("", "12", "15:12", "a:b", "0:3", "1:2:3"):
        assert parse_announcement(bad) is None, bad


def test_ranges_merge_when_they_touch_and_collapse_past_the_limit() -> None:
    assert merge_ranges([(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)]) == [(1, 9), (20, 30)]
    many = [(10 * n, 10 * n + 1) for n in range(MAX_RANGES + 1)]
    assert merge_ranges(many) == [(0, 10 * MAX_RANGES + 1)]
    assert merge_ranges([]) == []


def test_seen_ids_drop_duplicates_in_any_order() -> None:
    seen = SeenIds(10)
    assert [e.id for e in seen.fresh([event(9), event(12), event(11)])] == [12, 11]
    assert [e.id for e in seen.fresh([event(11), event(12), event(13)])] == [13]
    assert seen.high == 13
    seen.fresh([event(100 + n) for n in range(SEEN_WINDOW + 10)])
    # Beyond the window, older ids are covered by the floor.
    assert seen.floor >= 100 and seen.fresh([event(101)]) == []


async def test_a_subscription_is_bounded_and_lags_instead_of_growing() -> None:
    lags: list[int] = []
    subscription = Subscription(RUN, None, 3, lambda: lags.append(1))
    subscription.deliver([event(1), event(2)])
    assert await subscription.wait(0.01)
    subscription.deliver([event(3), event(4)])  # over the bound: dropped, lagged
    assert lags == [1]
    assert subscription.take_lag() is True and subscription.take_lag() is False
    assert subscription.take() == []
    assert not await subscription.wait(0.01)
    subscription.deliver([event(5)])
    assert [e.id for e in subscription.take()] == [5]
    subscription.close()
    assert await subscription.wait(0.01) and subscription.closed
    await asyncio.sleep(0)


def test_frames_are_server_sent_events() -> None:
    change = event(42, "flow.failed", {"error": {"message": "line\nbreak"}})
    text = frames([change])
    lines = text.split("\n")
    assert lines[:2] == ["id: 42", "event: flow.failed"]
    assert lines[2].startswith("data: ") and text.endswith("\n\n") and len(lines) == 5
    body = json.loads(lines[2][len("data: ") :])
    assert body["status"] == "failed" and body["run_id"] == str(RUN)
    assert body["data"]["error"]["message"] == "line\nbreak"
    assert "status" not in json.loads(frames([event(1)]).split("\n")[2][6:])
    assert frames([]) == ": keepalive\n\n"
    assert end_frame(RUN, "completed").startswith("event: end\ndata: ")


def test_the_resume_point_prefers_last_event_id() -> None:
    assert resume_point(None, None) is None
    assert resume_point(None, 5) == 5
    assert resume_point("9", 5) == 9
    assert resume_point("  ", 5) == 5
