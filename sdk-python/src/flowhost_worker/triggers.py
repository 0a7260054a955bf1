"""Triggers: what starts a flow from outside, declared on the flow's entry step.

```python
@step(
    flow="signups",
    entry=True,
    triggers={
        "define": {
            "name": "signup.form",
            "type": "manual",
            "config": {"schema": {"type": "object", "required": ["email"]}},
        },
        "subscribe": ["signup.form", {"name": "user.created", "mode": "manual"}],
    },
)
async def welcome(data, ctx): ...
```

`subscribe` names triggers whose fires start a run of the flow (`mode` "auto", the default, or
"manual": only a fire that names the flow starts it); `define` declares triggers (one mapping
or a list) with a `type` (event, webhook, schedule, manual, cloudevents, mqtt, amqp), an
optional `display_name` and `description`, and a type's `config` (JSON data). Defining a trigger
does not subscribe the flow to it. The shape is checked here; the host checks each type's
config when it discovers the file, and registers the triggers when it starts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from flowhost_worker.errors import StepConfigError
from flowhost_worker.json_data import json_problem
from flowhost_worker.names import NAME_PATTERN

MODES = ("auto", "manual")
# A trigger type is a short lowercase word; the host knows which ones exist.
TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_NAME_LENGTH = 200
TRIGGERS_KEYS = ("subscribe", "define", "mode")
SUBSCRIBE_KEYS = ("name", "mode")
DEFINE_KEYS = ("name", "type", "display_name", "description", "config")


@dataclasses.dataclass(frozen=True, slots=True)
class TriggerDefinition:
    name: str
    type: str
    display_name: str | None = None
    description: str | None = None
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "displayName": self.display_name,
            "description": self.description,
            "config": dict(self.config),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Triggers:
    """An entry step's triggers: subscriptions (name, mode) and definitions."""

    subscribe: tuple[tuple[str, str], ...] = ()
    define: tuple[TriggerDefinition, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The canonical config: the same keys, in the same order, as the Node SDK writes for
        `flow.triggers`."""
        return {
            "subscribe": [{"name": name, "mode": mode} for name, mode in self.subscribe],
            "define": [definition.to_dict() for definition in self.define],
        }


def parse_triggers(value: object) -> Triggers | None:
    """`triggers=`: a mapping `{subscribe, define, mode}`, or None."""
    if value is None or isinstance(value, Triggers):
        return value
    if not isinstance(value, Mapping):
        raise _error(f"must be a mapping {{subscribe, define}} (got {value!r})")
    _no_unknown_keys(value, TRIGGERS_KEYS, "triggers")
    mode = _mode(value.get("mode", "auto"), "triggers.mode")
    subscribe = _subscriptions(value.get("subscribe", ()), mode)
    define = value.get("define", ())
    items = [define] if isinstance(define, Mapping) else define
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise _error(f"define must be a mapping or a list of them (got {define!r})")
    definitions = tuple(_definition(item, f"triggers.define[{n}]") for n, item in enumerate(items))
    names = [d.name for d in definitions]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise _error(f"define declares trigger {twice[0]!r} twice")
    return Triggers(subscribe=subscribe, define=definitions)


def _subscriptions(value: object, default_mode: str) -> tuple[tuple[str, str], ...]:
    items = [value] if isinstance(value, str | Mapping) else value
    if not isinstance(items, Sequence):
        raise _error(f"subscribe must be a trigger name or a list of them (got {value!r})")
    found: dict[str, str] = {}
    for position, item in enumerate(items):
        where = f"triggers.subscribe[{position}]"
        if isinstance(item, Mapping):
            _no_unknown_keys(item, SUBSCRIBE_KEYS, where)
            name = _name(item.get("name"), f"{where}.name")
            mode = _mode(item.get("mode", default_mode), f"{where}.mode")
        else:
            name, mode = _name(item, where), default_mode
        if found.setdefault(name, mode) != mode:
            raise _error(f"subscribe names trigger {name!r} twice, with two modes")
    return tuple(found.items())


def _definition(value: object, where: str) -> TriggerDefinition:
    if not isinstance(value, Mapping):
        raise _error(f"{where} must be a mapping {{name, type, config}} (got {value!r})")
    _no_unknown_keys(value, DEFINE_KEYS, where)
    name = _name(value.get("name"), f"{where}.name")
    kind = value.get("type")
    if not isinstance(kind, str) or not TYPE_PATTERN.match(kind):
        raise _error(
            f"{where}.type must be a trigger type such as 'event', 'webhook', 'schedule' or "
            f"'manual' (got {kind!r})"
        )
    texts = {}
    for key in ("display_name", "description"):
        text = value.get(key)
        if text is not None and not isinstance(text, str):
            raise _error(f"{where}.{key} must be a string (got {text!r})")
        texts[key] = text
    config = value.get("config", {})
    if not isinstance(config, Mapping):
        raise _error(f"{where}.config must be a mapping of JSON data (got {config!r})")
    problem = json_problem(config, f"{where}.config")
    if problem is not None:
        raise _error(problem)
    return TriggerDefinition(name, kind, config=dict(config), **texts)


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value) or len(value) > MAX_NAME_LENGTH:
        raise _error(
            f"{where} must be a trigger name of letters, digits and _ . : - (got {value!r})"
        )
    return value


def _mode(value: object, where: str) -> str:
    if value not in MODES:
        raise _error(f"{where} must be 'auto' or 'manual' (got {value!r})")
    return str(value)


def _no_unknown_keys(value: Mapping[Any, Any], known: Sequence[str], where: str) -> None:
    for key in value:
        if key not in known:
            raise _error(f"{where} has an unknown key {key!r} (known: {', '.join(known)})")


def _error(message: str) -> StepConfigError:
    text = message if message.startswith("triggers") else f"triggers: {message}"
    return StepConfigError(text, field="triggers")
