"""Await declarations: every validation error names its field; the canonical config is the
shape the host parses (AwaitDefinition) and the Node SDK writes; hooks and `ctx.awaited` in
tests without a host."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from flowhost_worker import Await, Awaited, RunContext, StepConfigError, WorkerError, step
from flowhost_worker.describe import describe
from flowhost_worker.step import step_config
from flowhost_worker.testing import MemoryBackend, context_for


async def notify_approver(data: Any, ctx: RunContext) -> None:
    ctx.logger.info("mail sent", url=data["url"])
    await ctx.state.set("mailed", True)


async def not_a_hook_shape(data: Any) -> None: ...


def sync_function(data: Any, ctx: RunContext) -> None: ...


HOOKS = {"register": None, "resolve": None, "timeout": None}


def canonical(**fields: Any) -> dict[str, Any]:
    """An await's canonical config: the defaults, with `fields` over them."""
    return {
        "type": "time",
        "delayMs": None,
        "event": None,
        "match": None,
        "method": "POST",
        "schema": None,
        "cron": None,
        "timezone": "UTC",
        "timeoutMs": None,
        "timeoutAction": "fail",
        "attempts": 3,
        "hooks": HOOKS,
    } | fields


def test_each_type_writes_the_canonical_shape_in_order() -> None:
    assert Await.time(1.5).to_dict() == canonical(delayMs=1500)
    assert list(Await.time(1).to_dict()) == list(canonical())
    assert Await.event("payment.done", {"order": "/order/id", "all": ""}).to_dict() == canonical(
        type="event", event="payment.done", match={"order": "/order/id", "all": ""}
    )
    assert Await.webhook(
        "put", {"type": "object", "required": ["ok"]}, timeout=3600, timeout_action="continue"
    ).to_dict() == canonical(
        type="webhook",
        method="PUT",
        schema={"type": "object", "required": ["ok"]},
        timeoutMs=3_600_000,
        timeoutAction="continue",
    )
    assert Await.schedule(" 0  9 * * 1-5 ", "Europe/Berlin", attempts=2).to_dict() == canonical(
        type="schedule", cron="0 9 * * 1-5", timezone="Europe/Berlin", attempts=2
    )
    assert Await.schedule("@daily").to_dict()["cron"] == "@daily"


def test_hooks_are_written_as_names_given_as_functions_or_names() -> None:
    declared = Await.webhook(
        on_register=notify_approver, on_resolve="booked", on_timeout="notify_approver"
    )
    assert declared.to_dict()["hooks"] == {
        "register": "notify_approver",
        "resolve": "booked",
        "timeout": "notify_approver",
    }


def test_a_tiny_positive_duration_stays_positive_on_the_wire() -> None:
    assert Await.time(0.0001, timeout=0.0002).to_dict() | {"hooks": HOOKS} == canonical(
        delayMs=1, timeoutMs=1
    )


@pytest.mark.parametrize(
    ("build", "field", "text"),
    [
        (lambda: Await.time(0), "delay", "positive, finite number of seconds"),
        (lambda: Await.time(-1), "delay", "positive"),
        (lambda: Await.time(math.inf), "delay", "finite"),
        (lambda: Await.time(math.nan), "delay", "finite"),
        (lambda: Await.time(True), "delay", "seconds"),
        (lambda: Await.time("5"), "delay", "seconds"),
        (lambda: Await.time(1, timeout=0), "timeout", "positive"),
        (lambda: Await.time(1, timeout=math.inf), "timeout", "finite"),
        (lambda: Await.time(1, timeout_action="wait"), "timeout_action", "'fail', 'continue'"),
        (lambda: Await.time(1, attempts=0), "attempts", ">= 1"),
        (lambda: Await.time(1, attempts=2.0), "attempts", "whole number"),
        (lambda: Await.time(1, attempts=True), "attempts", "whole number"),
        (lambda: Await.event(""), "event", "name of letters"),
        (lambda: Await.event("has space"), "event", "name of letters"),
        (lambda: Await.event(None), "event", "name of letters"),
        (lambda: Await.event("e", ["/a"]), "match", "mapping"),
        (lambda: Await.event("e", {"": "/a"}), "match", "non-empty payload field"),
        (lambda: Await.event("e", {1: "/a"}), "match", "non-empty payload field"),
        (lambda: Await.event("e", {"id": "order/id"}), "match", "JSON Pointer"),
        (lambda: Await.event("e", {"id": "/a~2b"}), "match", "JSON Pointer"),
        (lambda: Await.event("e", {"id": "/a~"}), "match", "JSON Pointer"),
        (lambda: Await.event("e", {"id": 3}), "match", "JSON Pointer"),
        (lambda: Await.webhook("HEAD"), "method", "GET, POST, PUT, PATCH, DELETE"),
        (lambda: Await.webhook(None), "method", "one of"),
        (lambda: Await.webhook(schema=["object"]), "schema", "JSON Schema object"),
        (lambda: Await.webhook(schema={"x": math.nan}), "schema", "JSON data"),
        (lambda: Await.schedule(""), "cron", "5 to 7 fields"),
        (lambda: Await.schedule("* * * *"), "cron", "5 to 7 fields"),
        (lambda: Await.schedule("0 0 0 1 1 * 2030 x"), "cron", "5 to 7 fields"),
        (lambda: Await.schedule(None), "cron", "5 to 7 fields"),
        (lambda: Await.schedule("@daily", ""), "timezone", "IANA time zone"),
        (lambda: Await.schedule("@daily", "  "), "timezone", "IANA time zone"),
        (lambda: Await.schedule("@daily", None), "timezone", "IANA time zone"),
        (lambda: Await.time(1, on_register="not a name"), "on_register", "name of one"),
        (lambda: Await.time(1, on_resolve=sync_function), "on_resolve", "async function"),
        (lambda: Await.time(1, on_timeout=not_a_hook_shape), "on_timeout", "(data, ctx)"),
        (lambda: Await.time(1, on_timeout=42), "on_timeout", "async function"),
    ],
)
def test_every_mistake_is_a_step_config_error_naming_its_field(
    build: Any, field: str, text: str
) -> None:
    with pytest.raises(StepConfigError, match=text.replace("(", r"\(").replace(")", r"\)")) as e:
        build()
    assert e.value.field == field


def test_a_nested_hook_function_is_refused_since_the_child_finds_hooks_by_name() -> None:
    async def nested(data: Any, ctx: RunContext) -> None: ...

    with pytest.raises(StepConfigError, match="top level") as caught:
        Await.time(1, on_register=nested)
    assert caught.value.field == "on_register"


def test_step_takes_awaits_and_writes_them_last_in_its_config() -> None:
    @step(
        flow="expenses",
        subscribes="expense.submitted",
        await_before=Await.webhook(on_register=notify_approver),
        await_after=Await.time(60),
    )
    async def book(events: Any, ctx: RunContext) -> None: ...

    config = step_config(book)
    assert config is not None
    written = config.to_dict()
    assert list(written)[-3:] == ["awaitBefore", "awaitAfter", "triggers"]
    assert written["awaitBefore"] == canonical(
        type="webhook", hooks={"register": "notify_approver", "resolve": None, "timeout": None}
    )
    assert written["awaitAfter"] == canonical(delayMs=60_000)


def test_a_step_without_awaits_writes_nulls() -> None:
    @step(flow="f", entry=True)
    async def go(data: Any, ctx: RunContext) -> None: ...

    config = step_config(go)
    assert config is not None
    assert config.to_dict()["awaitBefore"] is None and config.to_dict()["awaitAfter"] is None


@pytest.mark.parametrize("field", ["await_before", "await_after"])
def test_an_await_must_be_an_await(field: str) -> None:
    with pytest.raises(StepConfigError, match="must be an Await") as caught:

        @step(flow="f", entry=True, **{field: {"type": "time", "delay": 5}})
        async def go(data: Any, ctx: RunContext) -> None: ...

    assert caught.value.field == field


def test_a_hook_function_from_another_module_is_refused() -> None:
    borrowed = Await.time(1, on_timeout=notify_approver)
    foreign = type(borrowed)(**{**_fields(borrowed), "hook_modules": {"notify_approver": "x.y"}})
    with pytest.raises(StepConfigError, match="not in the step's file") as caught:

        @step(flow="f", entry=True, await_after=foreign)
        async def go(data: Any, ctx: RunContext) -> None: ...

    assert caught.value.field == "on_timeout"


def _fields(declared: Await) -> dict[str, Any]:
    return {name: getattr(declared, name) for name in declared.__dataclass_fields__}


async def test_a_step_reads_ctx_awaited_and_a_hook_is_called_directly() -> None:
    @step(flow="expenses", subscribes="expense.submitted", await_before=Await.webhook())
    async def book(events: Any, ctx: RunContext) -> Any:
        return {"approved": ctx.awaited.data["approved"], "via": ctx.awaited.type}

    ctx = context_for(awaited=Awaited("webhook", {"approved": True}))
    assert await book({}, ctx) == {"approved": True, "via": "webhook"}
    assert context_for().awaited is None

    backend = MemoryBackend()
    hook_ctx = context_for(backend, hook="register")
    await notify_approver({"url": "https://example.test/a"}, hook_ctx)
    assert backend.state == {"mailed": True}
    assert backend.logs == [("info", "mail sent", {"url": "https://example.test/a"})]
    with pytest.raises(WorkerError, match="not available in an await hook"):
        await hook_ctx.emit("expense.booked", {})
    assert backend.emitted == []


def test_context_for_checks_its_await_arguments() -> None:
    with pytest.raises(TypeError, match="Awaited"):
        context_for(awaited={"type": "webhook", "data": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="register, resolve, timeout"):
        context_for(hook="after")


def test_describe_tells_which_hook_names_are_async_functions_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "approve.py").write_text(
        "from flowhost_worker import Await, step\n\n"
        "async def mail(data, ctx):\n    pass\n\n"
        "def not_async(data, ctx):\n    pass\n\n"
        "@step(flow='f', entry=True, await_before=Await.webhook(on_register=mail,\n"
        "      on_resolve='not_async', on_timeout='missing'), await_after=Await.time(5))\n"
        "async def go(data, ctx):\n    return data\n"
    )
    [found] = describe(tmp_path)["steps"]
    assert found["hooks"] == {"mail": True, "not_async": False, "missing": False}
    assert found["config"]["awaitAfter"]["delayMs"] == 5000
