"""Applying the functions' trigger declarations to the registry, at host start and on reload.

The functions' configs are the truth for what they declare: triggers they define
(`triggers.define`, source "config") and the subscriptions of their flows (`triggers.subscribe`).
`sync_triggers` makes the registry say the same, in the caller's transaction:

- a declared trigger that is new is registered; one that changed is updated (its version goes
  up, `trigger.updated` says what changed); a retired one that is declared again is active;
- a flow's subscription that is new is added, one whose mode changed is changed; a config
  subscription no config declares any more is removed. Subscriptions made through the API stay;
- a trigger a config defined that no config declares any more, and that no flow subscribes to
  any more, is retired (`trigger.retired`).

Hosts that sync at once take turns (a transaction-scoped advisory lock); each compares what is
written with what it declares, so the second finds nothing to do: no duplicate events. When some
function files failed to load, the picture is incomplete: nothing is removed or retired then, so
that a syntax error in `flowhost dev` does not retire a trigger until it is fixed. Subscriptions
of flows that failed to assemble are left as they are, for the same reason.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from flowhost.db.database import Connection
from flowhost.engine.definitions import DefinitionProblem, FlowDefinition
from flowhost.store import triggers as store
from flowhost.store.triggers import SubscriptionRow, TriggerRow
from flowhost.triggers import registry
from flowhost.triggers.declarations import TriggerSpec

logger = logging.getLogger(__name__)

RETIRED_REASON = "no function config declares it, and no flow subscribes to it"
REMOVED_REASON = "the flow's config no longer subscribes to it"


@dataclasses.dataclass(frozen=True, slots=True)
class DeclaredTrigger:
    spec: TriggerSpec
    # The file that declares it, relative to the functions directory.
    file: str


@dataclasses.dataclass(frozen=True, slots=True)
class DeclaredSubscription:
    trigger: str
    flow: str
    mode: str
    # "file:line" of the entry step that declares it (for problems).
    location: str


@dataclasses.dataclass(frozen=True, slots=True)
class Declarations:
    """What a project's function configs declare about triggers."""

    triggers: Mapping[str, DeclaredTrigger]
    subscriptions: Mapping[tuple[str, str], DeclaredSubscription]
    # Flows that failed to assemble: their subscriptions are not known now, and are kept.
    unknown_flows: frozenset[str] = frozenset()
    # Every function file loaded: removing and retiring are safe.
    complete: bool = True


@dataclasses.dataclass(slots=True)
class SyncResult:
    registered: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    retired: list[str] = dataclasses.field(default_factory=list)
    subscribed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    unsubscribed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    # Declarations that could not be applied, in words, with their location.
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.registered or self.updated or self.retired or self.subscribed or self.unsubscribed
        )


def declarations_of(
    flows: Mapping[str, FlowDefinition],
    problems: Sequence[DefinitionProblem] = (),
    *,
    root: Path | None = None,
) -> Declarations:
    """The trigger declarations of the entry steps of `flows` (discovered under `root`), with
    what the discovery `problems` say about how complete they are."""
    triggers: dict[str, DeclaredTrigger] = {}
    subscriptions: dict[tuple[str, str], DeclaredSubscription] = {}
    for flow in flows.values():
        entry = flow.step(flow.entry)
        if entry.triggers is None:
            continue
        file = _relative(entry.file, root)
        for spec in entry.triggers.define:
            triggers.setdefault(spec.name, DeclaredTrigger(spec, file))
        for item in entry.triggers.subscribe:
            subscriptions[(item.name, flow.name)] = DeclaredSubscription(
                item.name, flow.name, item.mode, f"{file}:{entry.line}"
            )
    return Declarations(
        triggers=triggers,
        subscriptions=subscriptions,
        unknown_flows=frozenset(p.flow for p in problems if p.flow is not None),
        complete=all(p.flow is not None for p in problems),
    )


def _relative(file: str, root: Path | None) -> str:
    if root is None or not os.path.isabs(file):
        return file
    try:
        return Path(file).relative_to(root).as_posix()
    except ValueError:
        return file


async def sync_triggers(conn: Connection, declared: Declarations) -> SyncResult:
    """Make the registry say what `declared` says (see the module's doc); call inside a
    transaction."""
    result = SyncResult()
    await store.lock_for_sync(conn)
    rows = await store.triggers_for_update(conn)
    for name in sorted(declared.triggers):
        rows[name] = await _apply_trigger(conn, declared.triggers[name], rows.get(name), result)
    subscriptions = {(s.trigger, s.flow): s for s in await store.all_subscriptions(conn)}
    await _apply_subscriptions(conn, declared, rows, subscriptions, result)
    if declared.complete:
        subscribed = {trigger for trigger, _ in subscriptions}
        for name, row in sorted(rows.items()):
            if (
                row.source == "config"
                and row.status != "retired"
                and name not in declared.triggers
                and name not in subscribed
            ):
                await registry.retire(conn, row, RETIRED_REASON)
                result.retired.append(name)
    for problem in result.problems:
        logger.warning("triggers: %s", problem)
    return result


async def _apply_trigger(
    conn: Connection, declared: DeclaredTrigger, current: TriggerRow | None, result: SyncResult
) -> TriggerRow:
    wanted = registry.new_row(declared.spec, source="config", declared_at=declared.file)
    if current is None:
        await registry.register(conn, wanted)
        result.registered.append(wanted.name)
        return wanted
    # Declared again, a retired trigger is back; a deprecated one stays deprecated.
    status = "active" if current.status == "retired" else current.status
    written = await registry.update(
        conn, current, dataclasses.replace(wanted, status=status, version=current.version)
    )
    if written is not current:
        result.updated.append(wanted.name)
    return written


async def _apply_subscriptions(
    conn: Connection,
    declared: Declarations,
    rows: Mapping[str, TriggerRow],
    subscriptions: dict[tuple[str, str], SubscriptionRow],
    result: SyncResult,
) -> None:
    for key, wanted in sorted(declared.subscriptions.items()):
        current = subscriptions.get(key)
        if current is not None and current.source == "api":
            continue  # made through the API: the API's to change
        row = rows.get(wanted.trigger)
        if row is None:
            result.problems.append(
                f"{wanted.location}: flow {wanted.flow!r} subscribes to trigger "
                f"{wanted.trigger!r}, which no function defines and the API did not create"
            )
            continue
        if row.status == "retired" and current is None:
            result.problems.append(
                f"{wanted.location}: flow {wanted.flow!r} subscribes to trigger "
                f"{wanted.trigger!r}, which is retired"
            )
            continue
        subscription = SubscriptionRow(wanted.trigger, wanted.flow, wanted.mode, "config")
        if await registry.subscribe(conn, subscription, current):
            subscriptions[key] = subscription
            result.subscribed.append(key)
    if not declared.complete:
        return
    for key in _gone(subscriptions.values(), declared):
        await registry.unsubscribe(conn, subscriptions.pop(key), REMOVED_REASON)
        result.unsubscribed.append(key)


def _gone(
    subscriptions: Iterable[SubscriptionRow], declared: Declarations
) -> list[tuple[str, str]]:
    """Config subscriptions no config declares any more (flows that failed to assemble keep
    theirs)."""
    return sorted(
        (s.trigger, s.flow)
        for s in subscriptions
        if s.source == "config"
        and s.flow not in declared.unknown_flows
        and (s.trigger, s.flow) not in declared.subscriptions
    )
