"""Replaying a trigger: its recorded fires, fired again as new runs.

The payloads come from the trigger's `trigger.fired` events (the last N, or those in a time
range; replays themselves are not replayed again). Each is fired again through `fire_trigger`,
into the subscribed flows or the ones chosen, and recorded as a new `trigger.fired` event with
`replay_of` naming the event it replays; a `trigger.replayed` event sums the replay up. All in
the caller's transaction: a replay happens whole or not at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flowhost.db.database import Connection
from flowhost.engine.starting import StartOptions
from flowhost.errors import InvalidInputError, TriggerNotFoundError, TriggerRetiredError
from flowhost.store import triggers as store
from flowhost.store.triggers import TRIGGER_REPLAYED, NewTriggerEvent
from flowhost.triggers.firing import Fired, ServedFlows, fire_trigger

# Fires one replay re-fires at most.
MAX_REPLAY = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class Replayed:
    trigger: str
    # The replayed trigger.fired events' ids, oldest first, and the new fires, in that order.
    replayed: tuple[int, ...]
    fires: tuple[Fired, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "replayed": list(self.replayed),
            "fires": [fire.to_json() for fire in self.fires],
        }


async def replay_trigger(
    conn: Connection,
    name: str,
    *,
    last: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    flows: Sequence[str] | None = None,
    served: ServedFlows | None = None,
    options: StartOptions | None = None,
) -> Replayed:
    """Fire again the trigger's `last` fires, or those from `since` (included) to `until`
    (excluded), or the last `last` of those; oldest first. `flows`: the subscribed flows to
    start runs in (manual-mode ones included); None: the flows subscribed in mode auto.

    Raises TriggerNotFoundError, TriggerRetiredError, TriggerInputError (a recorded payload no
    longer matches the trigger's schema), InvalidInputError (no selection, a selection of more
    than MAX_REPLAY fires, a flow that is not subscribed)."""
    _check_selection(last, since, until)
    found = await store.trigger_for_fire(conn, name)
    if found is None:
        raise TriggerNotFoundError(f"no trigger {name!r}", trigger=name)
    if found["status"] == "retired":
        raise TriggerRetiredError(f"trigger {name!r} is retired: it does not fire", trigger=name)
    limit = last if last is not None else MAX_REPLAY + 1
    events = await store.fires_to_replay(conn, name, limit=limit, since=since, until=until)
    if len(events) > MAX_REPLAY:
        raise InvalidInputError(
            f"the time range holds more than {MAX_REPLAY} fires of trigger {name!r}: narrow it, "
            "or replay the last N of them",
            trigger=name,
        )
    fires = []
    for event in events:
        fires.append(
            await fire_trigger(
                conn,
                name,
                event.data.get("payload"),
                source="replay",
                flows=flows,
                served=served,
                replay_of=event.id,
                options=options,
            )
        )
    selection: dict[str, Any] = {
        "last": last,
        "since": None if since is None else since.isoformat(),
        "until": None if until is None else until.isoformat(),
    }
    await store.append_trigger_events(
        conn,
        [
            NewTriggerEvent(
                name,
                TRIGGER_REPLAYED,
                {
                    **selection,
                    "flows": None if flows is None else list(flows),
                    "replayed": [event.id for event in events],
                    "fires": [fire.event_id for fire in fires],
                },
            )
        ],
    )
    return Replayed(name, tuple(event.id for event in events), tuple(fires))


def _check_selection(last: int | None, since: datetime | None, until: datetime | None) -> None:
    if last is None and since is None and until is None:
        raise InvalidInputError("say which fires to replay: the last N, or a time range")
    if last is not None and (
        isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= MAX_REPLAY
    ):
        raise InvalidInputError(f"last must be from 1 to {MAX_REPLAY} (got {last!r})")
    for label, moment in (("since", since), ("until", until)):
        if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
            raise InvalidInputError(f"{label} must be a datetime with a time zone")
    if since is not None and until is not None and since >= until:
        raise InvalidInputError("since must come before until")
