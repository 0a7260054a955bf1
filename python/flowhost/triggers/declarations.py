"""Triggers as declared: names, types, configs, subscriptions, and the rules that make them valid.

Pure domain code: no I/O. A function's config declares triggers on its flow's entry step
(`triggers={"subscribe": [...], "define": {...}}`, in the canonical shape both SDKs write); the
API declares them with the same fields. Every problem is a `FieldError`: a JSON Pointer into the
declaration and a message, which an HTTP answer lists as a 422's field errors.

Types: each type has a config check (`CONFIG_CHECKS`). `event`, `manual`, `schedule`
(flowhost.triggers.schedule_config) and `webhook` (flowhost.triggers.webhook_config) are checked;
the others accept any JSON object until their own work gives them a check. Every type takes
`config.schema`, a JSON Schema the payload of each fire must match.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jsonschema

from flowhost._core import TriggerIndex
from flowhost.connectors.trigger_config import CHECKS as broker_checks
from flowhost.errors import PatternError
from flowhost.triggers.schedule_config import config_problems
from flowhost.triggers.webhook_config import problems as webhook_problems
from flowhost_worker.names import NAME_PATTERN

MODES = ("auto", "manual")
STATUSES = ("active", "retired", "deprecated")
SOURCES = ("config", "api")
MAX_NAME_LENGTH = 200
MAX_TEXT_LENGTH = 2000
# A type is a short lowercase word (the database checks the same pattern).
TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# How many schema errors of one payload are listed.
MAX_PAYLOAD_ERRORS = 20
# Config keys whose values are secrets: shown and recorded as REDACTED.
SECRET_KEY = re.compile(r"secret|password|passwd|token|api[_-]?key|private|credential", re.I)
REDACTED = "***"


@dataclasses.dataclass(frozen=True, slots=True)
class FieldError:
    """Where a declaration or a payload is wrong: a JSON Pointer, and why."""

    pointer: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}" if self.pointer else self.message


# -- config checks by type ------------------------------------------------------------------

ConfigCheck = Callable[[str, Mapping[str, Any]], list[FieldError]]


def _any_config(name: str, config: Mapping[str, Any]) -> list[FieldError]:
    """A type whose config is not checked yet (beyond being a JSON object with a valid
    `schema`): its own work gives it a check."""
    return []


def event_patterns(name: str, config: Mapping[str, Any]) -> list[str]:
    """The event names and patterns an event trigger fires on: `config.events` (a pattern or
    a list of them), else the trigger's own name."""
    events = config.get("events")
    if events is None:
        return [name]
    if isinstance(events, str):
        return [events]
    return [str(event) for event in events] if isinstance(events, list) else []


def _event_config(name: str, config: Mapping[str, Any]) -> list[FieldError]:
    events = config.get("events")
    if events is None:
        patterns: list[tuple[str, object]] = [("/name", name)]
    elif isinstance(events, str):
        patterns = [("/config/events", events)]
    elif isinstance(events, list) and events:
        patterns = [(f"/config/events/{n}", event) for n, event in enumerate(events)]
    else:
        return [FieldError("/config/events", "must be an event pattern or a list of them")]
    problems = []
    index = TriggerIndex()
    for pointer, pattern in patterns:
        if not isinstance(pattern, str):
            problems.append(FieldError(pointer, "must be a string"))
            continue
        try:
            index.add(pattern, pointer)
        except PatternError as exc:
            problems.append(FieldError(pointer, exc.message))
    return problems


def _webhook_config(name: str, config: Mapping[str, Any]) -> list[FieldError]:
    # The route side reads the same config (flowhost.triggers.webhook_config).
    return [FieldError(pointer, message) for pointer, message in webhook_problems(config)]


def _manual_config(name: str, config: Mapping[str, Any]) -> list[FieldError]:
    # A manual trigger's input form is its `schema` (checked for every type).
    return []


def _schedule_config(name: str, config: Mapping[str, Any]) -> list[FieldError]:
    problems = [FieldError(pointer, message) for pointer, message in config_problems(config)]
    # A fixed payload is every run's input: it must match the schema now, not fail each fire.
    schema = config.get("schema")
    if "payload" in config and schema is not None and schema_problem(schema) is None:
        problems += [
            FieldError("/config/payload" + error.pointer, error.message)
            for error in payload_errors(schema, config["payload"])
        ]
    return problems


def _broker_config(kind: str) -> ConfigCheck:
    """mqtt and amqp triggers: checked by flowhost.connectors (docs/connectors.md)."""

    def check(name: str, config: Mapping[str, Any]) -> list[FieldError]:
        return [FieldError(p.pointer, p.message) for p in broker_checks[kind](name, config)]

    return check


# type -> its config check. Adding a type is adding an entry (the database takes any short
# lowercase word).
CONFIG_CHECKS: dict[str, ConfigCheck] = {
    "event": _event_config,
    "webhook": _webhook_config,
    "schedule": _schedule_config,
    "manual": _manual_config,
    "cloudevents": _any_config,
    "mqtt": _broker_config("mqtt"),
    "amqp": _broker_config("amqp"),
}
TRIGGER_TYPES = tuple(CONFIG_CHECKS)


def check_config(kind: str, name: str, config: Any) -> list[FieldError]:
    """Problems of `config` for a trigger of type `kind` named `name`."""
    if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
        return [FieldError("/config", "must be a JSON object")]
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return [FieldError("/config", f"must be JSON data: {exc}")]
    problems = []
    if "schema" in config:
        problem = schema_problem(config["schema"])
        if problem is not None:
            problems.append(FieldError("/config/schema", problem))
    check = CONFIG_CHECKS.get(kind)
    if check is not None:
        problems += check(name, config)
    return problems


# -- declarations ---------------------------------------------------------------------------


def name_problem(name: object, what: str = "name") -> str | None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return f"{what} must be a non-empty name of letters, digits and _ . : - (got {name!r})"
    if len(name) > MAX_NAME_LENGTH:
        return f"{what} must be at most {MAX_NAME_LENGTH} characters (got {len(name)})"
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class TriggerSpec:
    """A trigger's declaration: what a function config's `triggers.define` or the API gives."""

    name: str
    type: str
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    display_name: str | None = None
    description: str | None = None

    def problems(self) -> list[FieldError]:
        problems = []
        problem = name_problem(self.name)
        if problem is not None:
            problems.append(FieldError("/name", problem))
        if not isinstance(self.type, str) or self.type not in CONFIG_CHECKS:
            known = ", ".join(TRIGGER_TYPES)
            problems.append(FieldError("/type", f"must be one of {known} (got {self.type!r})"))
        for field, pointer in (("display_name", "/displayName"), ("description", "/description")):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH):
                problems.append(
                    FieldError(pointer, f"must be a string of at most {MAX_TEXT_LENGTH} characters")
                )
        if not problems:
            problems += check_config(self.type, self.name, self.config)
        return problems

    def to_json(self) -> dict[str, Any]:
        """The canonical shape (the SDKs' `triggers.define` items)."""
        return {
            "name": self.name,
            "type": self.type,
            "displayName": self.display_name,
            "description": self.description,
            "config": dict(self.config),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TriggerSpec:
        return cls(
            name=data["name"],
            type=data["type"],
            config=data.get("config") or {},
            display_name=data.get("displayName"),
            description=data.get("description"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TriggerSubscription:
    """A flow's entry step subscribes to the trigger `name`; `manual`: only fires that name
    the flow start it."""

    name: str
    mode: str = "auto"


@dataclasses.dataclass(frozen=True, slots=True)
class StepTriggers:
    """The `triggers` of an entry step's canonical config."""

    subscribe: tuple[TriggerSubscription, ...] = ()
    define: tuple[TriggerSpec, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> StepTriggers | None:
        if config is None:
            return None
        return cls(
            subscribe=tuple(
                TriggerSubscription(item["name"], item.get("mode") or "auto")
                for item in config.get("subscribe") or ()
            ),
            define=tuple(TriggerSpec.from_json(item) for item in config.get("define") or ()),
        )

    def problems(self) -> list[str]:
        """What is wrong, in words (the SDKs check the shape; types and configs are checked
        here, where every type is known)."""
        found = []
        names = [spec.name for spec in self.define]
        for twice in sorted({n for n in names if names.count(n) > 1}):
            found.append(f"triggers.define: trigger {twice!r} is defined twice")
        for position, spec in enumerate(self.define):
            for error in spec.problems():
                found.append(f"triggers.define[{position}] ({spec.name!r}): {error}")
        for item in self.subscribe:
            problem = name_problem(item.name, "a subscribed trigger's name")
            if problem is not None:
                found.append(f"triggers.subscribe: {problem}")
            if item.mode not in MODES:
                found.append(f"triggers.subscribe: mode of {item.name!r} must be auto or manual")
        return found


# -- payloads -------------------------------------------------------------------------------


def schema_problem(schema: object) -> str | None:
    """Why `schema` is not a usable JSON Schema, or None."""
    if not isinstance(schema, Mapping | bool):
        return "must be a JSON Schema (an object)"
    try:
        _validator(_schema_key(schema))
    except jsonschema.SchemaError as exc:
        return f"is not a valid JSON Schema: {exc.message}"
    except (TypeError, ValueError) as exc:
        return f"is not a valid JSON Schema: {exc}"
    return None


def payload_errors(schema: Mapping[str, Any] | bool, payload: Any) -> list[FieldError]:
    """Where `payload` breaks `schema` (at most MAX_PAYLOAD_ERRORS), as JSON Pointers into the
    payload."""
    validator = _validator(_schema_key(schema))
    found = sorted(validator.iter_errors(payload), key=lambda e: [str(p) for p in e.absolute_path])
    return [
        FieldError(_pointer(error.absolute_path), error.message)
        for error in found[:MAX_PAYLOAD_ERRORS]
    ]


def _schema_key(schema: Mapping[str, Any] | bool) -> str:
    return json.dumps(schema, sort_keys=True, allow_nan=False)


@functools.lru_cache(maxsize=256)
def _validator(schema_text: str) -> Any:
    schema = json.loads(schema_text)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def _pointer(path: Sequence[Any]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


# -- secrets --------------------------------------------------------------------------------


def redact(value: Any) -> Any:
    """`value` with the values of secret-looking keys (secret, password, token, api key ...)
    replaced by REDACTED: what trigger events, views and logs show of a config."""
    if isinstance(value, Mapping):
        return {
            key: (
                REDACTED if SECRET_KEY.search(str(key)) and item not in (None, "") else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value
