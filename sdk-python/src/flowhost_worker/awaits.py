"""Awaits: what a step waits for before it runs (`await_before=`) or before its emits count
(`await_after=`), and what the step learns when one resolves (`ctx.awaited`).

```python
from flowhost_worker import Await, step

async def send_approval_mail(data, ctx):
    ctx.logger.info("approve at", url=data["url"])

@step(
    flow="expenses",
    subscribes="expense.submitted",
    await_before=Await.webhook(timeout=3 * 86400, on_register=send_approval_mail),
)
async def book(events, ctx):
    approval = ctx.awaited.data  # the webhook's body
```

An `Await` serialises to the canonical config both SDKs write (`to_dict()`, times in
milliseconds, hooks as names); the host validates it again when it discovers the file (the cron
expression and time zone, and that each hook names an async function of the file).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from flowhost_worker.errors import StepConfigError
from flowhost_worker.json_data import json_problem
from flowhost_worker.names import NAME_PATTERN

AwaitType = Literal["time", "event", "webhook", "schedule"]
TimeoutAction = Literal["fail", "continue", "retry"]
HookKind = Literal["register", "resolve", "timeout"]
AWAIT_TYPES = ("time", "event", "webhook", "schedule")
TIMEOUT_ACTIONS = ("fail", "continue", "retry")
HOOK_KINDS = ("register", "resolve", "timeout")
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# A cron expression has 5 fields, 6 with seconds, 7 with a year (which the host refuses with
# its own message); a macro such as "@daily" is one. The host parses it in full.
CRON_FIELDS = range(5, 8)
DEFAULT_ATTEMPTS = 3

# A hook: an async function `(data, ctx)` at the top level of the step's file, or its name.
Hook = Callable[..., Any] | str


@dataclasses.dataclass(frozen=True, slots=True)
class Await:
    """One await of a step. Build it with `Await.time`, `.event`, `.webhook` or `.schedule`."""

    type: AwaitType
    delay: float | None = None  # time: seconds from registration
    event_name: str | None = None  # event: the event's name
    # event: payload field -> JSON Pointer into the step's input (await_before) or result
    # (await_after); the event resolves the await only if each field equals that value.
    match: Mapping[str, str] | None = None
    method: str = "POST"  # webhook: the method the resolve URL accepts
    schema: Mapping[str, Any] | None = None  # webhook: JSON Schema of the body
    cron: str | None = None  # schedule: resolves at the next fire time
    timezone: str = "UTC"
    timeout: float | None = None  # seconds; None: the host's default for the type
    timeout_action: TimeoutAction = "fail"
    attempts: int = DEFAULT_ATTEMPTS  # with timeout_action="retry": registrations in all
    on_register: str | None = None  # hook names (functions of the step's file)
    on_resolve: str | None = None
    on_timeout: str | None = None
    # Hook name -> module of the function object it was given as (None for a bare name); the
    # step checks that the functions live in its own file.
    hook_modules: Mapping[str, str | None] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def time(
        cls,
        seconds: float,
        *,
        timeout: float | None = None,
        timeout_action: TimeoutAction = "fail",
        attempts: int = DEFAULT_ATTEMPTS,
        on_register: Hook | None = None,
        on_resolve: Hook | None = None,
        on_timeout: Hook | None = None,
    ) -> Await:
        """Wait `seconds` after the await is registered."""
        return cls._build(
            "time",
            {"delay": _seconds(seconds, "delay")},
            timeout,
            timeout_action,
            attempts,
            (on_register, on_resolve, on_timeout),
        )

    @classmethod
    def event(
        cls,
        name: str,
        match: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
        timeout_action: TimeoutAction = "fail",
        attempts: int = DEFAULT_ATTEMPTS,
        on_register: Hook | None = None,
        on_resolve: Hook | None = None,
        on_timeout: Hook | None = None,
    ) -> Await:
        """Wait for event `name`; with `match`, only for one whose payload fields equal the
        values the JSON Pointers pick from the step's input (before) or result (after):
        `match={"order_id": "/order/id"}`. Default timeout: 24 h."""
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise StepConfigError(
                f"await event must be a name of letters, digits and _ . : - (got {name!r})",
                field="event",
            )
        return cls._build(
            "event",
            {"event_name": name, "match": _match(match)},
            timeout,
            timeout_action,
            attempts,
            (on_register, on_resolve, on_timeout),
        )

    @classmethod
    def webhook(
        cls,
        method: str = "POST",
        schema: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        timeout_action: TimeoutAction = "fail",
        attempts: int = DEFAULT_ATTEMPTS,
        on_register: Hook | None = None,
        on_resolve: Hook | None = None,
        on_timeout: Hook | None = None,
    ) -> Await:
        """Wait for a call to the run's own resolve URL with `method`, whose body must match
        the JSON Schema `schema` if one is given. Default timeout: 24 h."""
        return cls._build(
            "webhook",
            {"method": _method(method), "schema": _schema(schema)},
            timeout,
            timeout_action,
            attempts,
            (on_register, on_resolve, on_timeout),
        )

    @classmethod
    def schedule(
        cls,
        cron: str,
        timezone: str = "UTC",
        *,
        timeout: float | None = None,
        timeout_action: TimeoutAction = "fail",
        attempts: int = DEFAULT_ATTEMPTS,
        on_register: Hook | None = None,
        on_resolve: Hook | None = None,
        on_timeout: Hook | None = None,
    ) -> Await:
        """Wait until the next fire time of `cron` in the IANA time zone `timezone`."""
        parts = cron.split() if isinstance(cron, str) else []
        macro = len(parts) == 1 and parts[0].startswith("@")
        if len(parts) not in CRON_FIELDS and not macro:
            raise StepConfigError(
                "await cron must be a cron expression of 5 to 7 fields or a macro such as "
                f"'@daily' (got {cron!r})",
                field="cron",
            )
        if not isinstance(timezone, str) or not timezone.strip():
            raise StepConfigError(
                f"await timezone must be an IANA time zone name such as 'Europe/Berlin' "
                f"(got {timezone!r})",
                field="timezone",
            )
        return cls._build(
            "schedule",
            {"cron": " ".join(parts), "timezone": timezone},
            timeout,
            timeout_action,
            attempts,
            (on_register, on_resolve, on_timeout),
        )

    @classmethod
    def _build(
        cls,
        kind: AwaitType,
        fields: dict[str, Any],
        timeout: float | None,
        timeout_action: str,
        attempts: int,
        hooks: tuple[Hook | None, Hook | None, Hook | None],
    ) -> Await:
        if timeout is not None:
            timeout = _seconds(timeout, "timeout")
        if timeout_action not in TIMEOUT_ACTIONS:
            raise StepConfigError(
                f"await timeout_action must be 'fail', 'continue' or 'retry' "
                f"(got {timeout_action!r})",
                field="timeout_action",
            )
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise StepConfigError(
                f"await attempts must be a whole number >= 1: how many times a "
                f"timeout_action='retry' await is registered in all (got {attempts!r})",
                field="attempts",
            )
        names: list[str | None] = []
        modules: dict[str, str | None] = {}
        for kind_of_hook, hook in zip(HOOK_KINDS, hooks, strict=True):
            name, module = _hook(hook, f"on_{kind_of_hook}")
            names.append(name)
            if name is not None:
                modules[name] = module
        return cls(
            type=kind,
            timeout=timeout,
            timeout_action=timeout_action,  # type: ignore[arg-type]  # checked above
            attempts=attempts,
            on_register=names[0],
            on_resolve=names[1],
            on_timeout=names[2],
            hook_modules=modules,
            **fields,
        )

    @property
    def hooks(self) -> dict[str, str | None]:
        """Hook kind -> function name."""
        return {
            "register": self.on_register,
            "resolve": self.on_resolve,
            "timeout": self.on_timeout,
        }

    def to_dict(self) -> dict[str, Any]:
        """The canonical config (docs/protocol.md): the same keys, in the same order, as the
        Node SDK writes for `flow.awaitBefore` / `flow.awaitAfter`."""
        return {
            "type": self.type,
            "delayMs": None if self.delay is None else _milliseconds(self.delay),
            "event": self.event_name,
            "match": None if self.match is None else dict(self.match),
            "method": self.method,
            "schema": None if self.schema is None else dict(self.schema),
            "cron": self.cron,
            "timezone": self.timezone,
            "timeoutMs": None if self.timeout is None else _milliseconds(self.timeout),
            "timeoutAction": self.timeout_action,
            "attempts": self.attempts,
            "hooks": self.hooks,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Awaited:
    """`ctx.awaited`: how the step's `await_before` resolved. `data` is the webhook's body, the
    matching event's payload, `{"scheduled_at": ...}` for a schedule, `None` for a time await
    and for a timeout with `timeout_action="continue"`."""

    type: str
    data: Any = None

    def to_params(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data}


def check_await(value: object, field: str) -> Await | None:
    """`await_before=` / `await_after=`: an `Await` or None."""
    if value is None or isinstance(value, Await):
        return value
    raise StepConfigError(
        f"{field} must be an Await such as Await.webhook() or Await.time(60) (got {value!r})",
        field=field,
    )


def _seconds(value: object, field: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise StepConfigError(
            f"await {field} must be a positive, finite number of seconds (got {value!r})",
            field=field,
        )
    return float(value)


def _milliseconds(seconds: float) -> int:
    # At least 1: a positive duration never becomes "no time at all" on the wire.
    return max(1, round(seconds * 1000))


def _match(match: object) -> dict[str, str] | None:
    if match is None:
        return None
    if not isinstance(match, Mapping):
        raise StepConfigError(
            f"await match must be a mapping of payload field -> JSON Pointer (got {match!r})",
            field="match",
        )
    checked: dict[str, str] = {}
    for key, pointer in match.items():
        if not isinstance(key, str) or not key:
            raise StepConfigError(
                f"await match keys must be non-empty payload field names (got {key!r})",
                field="match",
            )
        if not isinstance(pointer, str) or not _is_json_pointer(pointer):
            raise StepConfigError(
                f"await match[{key!r}] must be a JSON Pointer such as '/order/id' or '' for the "
                f"whole value (got {pointer!r})",
                field="match",
            )
        checked[key] = pointer
    return checked or None


def _is_json_pointer(text: str) -> bool:
    """RFC 6901: empty, or '/'-prefixed reference tokens where '~' is only '~0' or '~1'."""
    if text and not text.startswith("/"):
        return False
    return all(part.startswith(("0", "1")) for part in text.split("~")[1:])


def _method(method: object) -> str:
    upper = method.upper() if isinstance(method, str) else None
    if upper not in WEBHOOK_METHODS:
        raise StepConfigError(
            f"await method must be one of {', '.join(WEBHOOK_METHODS)} (got {method!r})",
            field="method",
        )
    return upper


def _schema(schema: object) -> dict[str, Any] | None:
    if schema is None:
        return None
    if not isinstance(schema, Mapping):
        raise StepConfigError(
            f"await schema must be a JSON Schema object (a dict; got {schema!r})", field="schema"
        )
    value = dict(schema)
    problem = json_problem(value, "the schema")
    if problem is not None:
        raise StepConfigError(f"await schema must be JSON data: {problem}", field="schema")
    return value


def _hook(hook: object, field: str) -> tuple[str | None, str | None]:
    """(name, module of the function object or None for a name)."""
    if hook is None:
        return None, None
    if isinstance(hook, str):
        if not hook.isidentifier():
            raise StepConfigError(
                f"{field} must be an async function or the name of one in this file (got {hook!r})",
                field=field,
            )
        return hook, None
    name = getattr(hook, "__name__", None)
    if not inspect.iscoroutinefunction(hook) or not isinstance(name, str):
        raise StepConfigError(
            f"{field} must be an async function (async def) taking (data, ctx), or its name "
            f"(got {hook!r})",
            field=field,
        )
    if getattr(hook, "__qualname__", name) != name:
        raise StepConfigError(
            f"{field}: {name!r} must be defined at the top level of the step's file, where the "
            "child can find it by name",
            field=field,
        )
    if len(inspect.signature(hook).parameters) != 2:
        raise StepConfigError(
            f"{field}: {name!r} must take exactly two parameters (data, ctx)", field=field
        )
    return name, getattr(hook, "__module__", None)
