"""The child runtime as a real process (`python -m flowhost_worker.child`) against a fake host."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from fake_host import Connection, FakeHost, execute_params

from flowhost_worker import __version__
from flowhost_worker.protocol import ErrorCode
from flowhost_worker.rpc import RemoteError

pytestmark = pytest.mark.asyncio

Processes = list[asyncio.subprocess.Process]


async def start(
    host: FakeHost,
    functions: Path,
    processes: Processes,
    worker_id: str = "w1",
    env: dict[str, str] | None = None,
) -> tuple[Connection, asyncio.subprocess.Process]:
    connection, process = await host.spawn_cold(worker_id, functions, env)
    processes.append(process)
    await asyncio.wait_for(connection.hello_seen.wait(), 10)
    return connection, process


async def execute(connection: Connection, functions: Path, handler: str, **kw: Any) -> Any:
    input = kw.pop("input", None)
    params = execute_params(functions / "steps.py", handler, input, **kw)
    return await asyncio.wait_for(connection.peer.call("execute", params), 10)


async def failure(connection: Connection, functions: Path, handler: str, **kw: Any) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        await execute(connection, functions, handler, **kw)
    return caught.value


async def exit_status(process: asyncio.subprocess.Process, timeout: float = 10) -> int:
    return await asyncio.wait_for(process.wait(), timeout)


async def test_hello_then_execute_then_exit_0(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, process = await start(host, functions, processes)
    assert connection.hello == {
        "protocol": 1,
        "runtime": "python",
        "sdk_version": __version__,
        "pid": process.pid,
    }
    result = await execute(connection, functions, "echo", input={"id": 7})
    assert result == {"result": {"input": {"id": 7}, "key": "key-echo", "attempt": 1}}
    assert await exit_status(process) == 0


async def test_state_round_trip_through_the_host(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, process = await start(host, functions, processes)
    result = await execute(connection, functions, "state_round_trip")
    assert result["result"] == {
        "got": {"id": 7},
        "missing": "fallback",
        "keys": ["order", "total"],
        "after": ["order"],
    }
    assert connection.state == {"order": {"id": 7}}
    assert await exit_status(process) == 0


async def test_a_step_gets_ctx_awaited_and_a_hook_runs_instead_of_the_handler(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, _ = await start(host, functions, processes, "w-awaited")
    awaited = {"type": "webhook", "data": {"approved": True}}
    result = await execute(connection, functions, "after_await", awaited=awaited)
    assert result == {"result": awaited}
    connection, _ = await start(host, functions, processes, "w-hook")
    hook = {"function": "mail_hook", "kind": "register"}
    result = await execute(connection, functions, "after_await", input={"url": "u"}, hook=hook)
    assert result["result"]["hook"] == "register"
    assert "not available in an await hook" in result["result"]["refused"]
    assert connection.state == {"mailed": "u"}
    assert [call[0] for call in connection.calls] == ["state.set"]


async def test_notifications_arrive_in_order_before_the_answer(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, process = await start(host, functions, processes)
    assert (await execute(connection, functions, "chatty"))["result"] == "said it all"
    notes = connection.notes
    job_notes = [(m, p) for m, p in notes if m != "heartbeat"]
    assert job_notes == [
        ("log", {"level": "info", "message": "first", "fields": {"n": 1}}),
        ("progress", {"value": 0.5, "message": "half way"}),
        (
            "log",
            {
                "level": "warning",
                "message": "odd field",
                "fields": {"thing": job_notes[2][1]["fields"]["thing"]},
            },
        ),
        ("log", {"level": "error", "message": "last", "fields": {}}),
        ("answer", {"id": 1}),
    ]
    assert job_notes[2][1]["fields"]["thing"].startswith("<object object")
    # ctx.heartbeat() sits between the progress and the next log
    progress_at = notes.index(job_notes[1])
    assert ("heartbeat", {}) in notes[progress_at + 1 : notes.index(job_notes[2])]
    assert connection.calls == [("emit", {"name": "order.done", "payload": {"id": 7}})]
    assert await exit_status(process) == 0


async def test_flow_calls_send_their_params(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, process = await start(host, functions, processes)
    result = await execute(connection, functions, "flows")
    assert result["result"] == ["run-2", "run-2", True, True, False, False, False]
    assert connection.calls == [
        ("flow.start", {"flow": "billing", "input": {"id": 7}, "idempotency_key": "bill-7"}),
        ("flow.start", {"flow": "audit", "input": None}),
        ("flow.cancel", {}),
        ("flow.cancel", {"run_id": "run-9"}),
        ("flow.is_running", {"exclude_run_ids": []}),
        ("flow.is_running", {"exclude_run_ids": ["run-3"], "flow": "billing"}),
        ("flow.is_running", {"exclude_run_ids": [], "run_id": "run-4"}),
    ]
    assert await exit_status(process) == 0


@pytest.mark.parametrize(
    ("handler", "kind", "message", "retry_delay"),
    [
        ("fails", "ValueError", "the order has no lines", None),
        ("retries", "RetryRequested", "rate limited", 2.5),
        ("out_of_memory", "MemoryError", "", None),
        ("exits", "SystemExit", "3", None),
        ("unsendable", "TypeError", "the step's return value['ids'] is a set", None),
    ],
)
async def test_a_failing_handler_is_step_failed_with_its_details(
    host: FakeHost,
    functions: Path,
    processes: Processes,
    handler: str,
    kind: str,
    message: str,
    retry_delay: float | None,
) -> None:
    connection, process = await start(host, functions, processes)
    error = await failure(connection, functions, handler)
    assert error.code == ErrorCode.STEP_FAILED
    assert error.data["type"] == kind
    assert error.data["message"].startswith(message)
    assert error.data["retry_delay"] == retry_delay
    if handler != "unsendable":
        assert f"in {handler}" in error.data["stack"] and "steps.py" in error.data["stack"]
    assert await exit_status(process) == 0


@pytest.mark.parametrize(
    ("file", "handler", "kind"),
    [
        ("broken.py", "anything", "ImportError"),
        ("steps.py", "no_such_handler", "AttributeError"),
        ("steps.py", "not_callable", "TypeError"),
        ("missing.py", "handler", "FileNotFoundError"),
    ],
)
async def test_an_unloadable_handler_is_32053(
    host: FakeHost, functions: Path, processes: Processes, file: str, handler: str, kind: str
) -> None:
    connection, process = await start(host, functions, processes)
    params = execute_params(functions / file, handler)
    with pytest.raises(RemoteError) as caught:
        await asyncio.wait_for(connection.peer.call("execute", params), 10)
    assert caught.value.code == ErrorCode.HANDLER_NOT_LOADABLE
    assert caught.value.data["type"] == kind
    assert caught.value.data["retry_delay"] is None
    assert await exit_status(process) == 0


async def test_a_second_execute_is_busy_and_cancel_is_32051(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, process = await start(host, functions, processes)
    first = asyncio.create_task(execute(connection, functions, "sleeps", input=30))
    await asyncio.sleep(0.2)
    busy = await failure(connection, functions, "echo")
    assert busy.code == ErrorCode.BUSY
    await connection.peer.notify("cancel", {"reason": "the run was cancelled"})
    with pytest.raises(RemoteError) as cancelled:
        await first
    assert cancelled.value.code == ErrorCode.CANCELLED
    assert cancelled.value.message == "cancelled: the run was cancelled"
    assert await exit_status(process) == 0


async def test_the_childs_own_deadline_is_32052(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, process = await start(host, functions, processes)
    began = time.monotonic()
    error = await failure(connection, functions, "sleeps", input=30, timeout=0.3)
    assert error.code == ErrorCode.STEP_TIMED_OUT
    assert 0.3 <= time.monotonic() - began < 3
    assert await exit_status(process) == 0


async def test_declared_env_is_set_and_nothing_else_leaks_in(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    os.environ["FLOWHOST_TEST_SECRET"] = "host-only"  # in the test's env, not the child's
    try:
        connection, process = await start(host, functions, processes)
        result = await execute(
            connection, functions, "environment", env={"API_TOKEN": "t0k", "REGION": "eu"}
        )
    finally:
        del os.environ["FLOWHOST_TEST_SECRET"]
    env = result["result"]
    assert env["API_TOKEN"] == "t0k" and env["REGION"] == "eu"
    assert "FLOWHOST_TEST_SECRET" not in env
    assert set(env) <= {
        "API_TOKEN",
        "REGION",
        "PATH",
        "PYTHONPATH",
        "FLOWHOST_ENDPOINT",
        "FLOWHOST_WORKER_ID",
        "LC_CTYPE",  # Python may coerce the C locale
    }
    assert await exit_status(process) == 0


async def test_a_reused_child_serves_jobs_until_shutdown(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, process = await start(host, functions, processes)
    first = await execute(connection, functions, "leaks", last=False)
    assert first["result"] == "left a task behind"
    second = await execute(connection, functions, "leaked", last=False)
    ended = "JobEndedError: the job has ended: a task the step started outlived it"
    assert [line[: len(ended)] for line in second["result"]] == [ended, ended]
    assert process.returncode is None
    await connection.peer.notify("shutdown", {})
    assert await exit_status(process) == 0


async def test_unknown_host_requests_are_method_not_found(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, process = await start(host, functions, processes)
    with pytest.raises(RemoteError) as caught:
        await asyncio.wait_for(connection.peer.call("state.get", {"key": "x"}), 10)
    assert caught.value.code == ErrorCode.METHOD_NOT_FOUND
    await connection.peer.notify("shutdown", {})
    assert await exit_status(process) == 0


async def test_a_refused_handshake_exits_71(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    host.refuse_protocol = True
    _, process = await host.spawn_cold("w1", functions)
    processes.append(process)
    assert await exit_status(process) == 71


async def test_a_silent_host_means_exit_70_after_three_intervals(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    host.heartbeat_interval = 0.2
    connection, process = await start(host, functions, processes)
    connection.beating = False
    began = connection.hello_at
    assert began is not None
    assert await exit_status(process) == 70
    silent_for = time.monotonic() - began
    assert 0.6 <= silent_for < 2.0, silent_for
    # it kept beating while it waited
    assert sum(1 for method, _ in connection.notes if method == "heartbeat") >= 2


async def test_execute_reaches_the_handler_in_well_under_a_millisecond(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, process = await start(host, functions, processes)
    latencies = []
    for last in (False, False, False, False, True):
        sent = time.monotonic()
        result = await execute(connection, functions, "started_at", last=last)
        latencies.append(result["result"] - sent)
    # the first execute imports the function file; later ones hit the cache
    warm = sorted(latencies[1:])
    print(
        f"execute -> handler running: first {latencies[0] * 1e6:.0f} us, "
        f"warm median {warm[len(warm) // 2] * 1e6:.0f} us"
    )
    assert warm[0] < 0.005  # generous: two shared cores; measured ~0.2 ms
    assert await exit_status(process) == 0


async def test_a_burst_of_logs_right_before_returning_still_precedes_the_answer(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, process = await start(host, functions, processes)
    assert (await execute(connection, functions, "floods", input=2000))["result"] == 2000
    lines = [params["fields"]["n"] for method, params in connection.notes if method == "log"]
    assert lines == list(range(2000))
    assert await exit_status(process) == 0


async def test_emits_are_notifications_that_all_precede_the_answer(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    # The step fills the notification queue with logs, then emits 12,000 times: a log past the
    # bound is dropped, every emit still reaches the host, in order, before the answer.
    connection, process = await start(host, functions, processes)
    declared = ["order.tick", "order.done"]
    answer = await execute(connection, functions, "emits_many", input=12_000, emits=declared)
    assert answer["result"] == 12_000
    job_notes = [(m, p) for m, p in connection.notes if m in ("emit", "answer")]
    assert job_notes == [
        *(("emit", {"name": "order.tick", "payload": n}) for n in range(12_000)),
        ("emit", {"name": "order.done", "payload": {"count": 12_000}}),
        ("answer", {"id": 1}),
    ]
    assert connection.calls == []  # no emit request: nothing waited for the host
    logged = [p for m, p in connection.notes if m == "log"]
    assert [p["fields"]["n"] for p in logged if p["message"] == "filler"] == list(range(10_000))
    assert [p["fields"] for p in logged if p["message"] != "filler"] == [{"dropped": 1}]
    assert await exit_status(process) == 0


async def test_an_emit_the_host_would_refuse_is_refused_in_the_step(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    connection, process = await start(host, functions, processes)
    answer = await execute(connection, functions, "emits_refused", emits=["order.done"])
    assert answer["result"] == [
        "step 'emits_refused' emits 'order.unknown' but declares emits=[order.done]",
        answer["result"][1],
        answer["result"][2],
    ]
    assert answer["result"][1].startswith("the payload of 'order.done' is too large: ")
    assert answer["result"][2].startswith("the payload of 'order.done' cannot be sent: ")
    assert [m for m, _ in connection.notes if m == "emit"] == []
    assert await exit_status(process) == 0


async def test_an_older_host_gets_emit_requests(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    # Without `emits` in the job the host may not take `emit` notifications: each emit is a
    # request, and the host's refusal reaches the step.
    connection, process = await start(host, functions, processes)
    assert (await execute(connection, functions, "emits_many", input=2))["result"] == 2
    assert [call for call in connection.calls if call[0] == "emit"] == [
        ("emit", {"name": "order.tick", "payload": 0}),
        ("emit", {"name": "order.tick", "payload": 1}),
        ("emit", {"name": "order.done", "payload": {"count": 2}}),
    ]
    assert [m for m, _ in connection.notes if m == "emit"] == []
    assert await exit_status(process) == 0


async def test_output_written_before_the_answer_is_in_the_pipes_when_it_arrives(
    host: FakeHost, functions: Path, processes: Processes
) -> None:
    # The host takes what its pipes hold when the answer arrives as all of the attempt's
    # output, without waiting for the child to exit (docs/protocol.md).
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        connection, process = await host.spawn_cold(
            "w1", functions, stdout=out_write, stderr=err_write
        )
        processes.append(process)
        os.close(out_write)
        os.close(err_write)
        await asyncio.wait_for(connection.hello_seen.wait(), 10)
        assert (await execute(connection, functions, "prints", last=False))["result"] is None
        os.set_blocking(out_read, False)
        os.set_blocking(err_read, False)
        # In the order each buffer was written out, not the order of the calls.
        assert sorted(os.read(out_read, 65536).decode().splitlines()) == [
            "from os.write",
            "from print",
            "from printf",
        ]
        assert os.read(err_read, 65536) == b"to stderr\n"
        await connection.peer.notify("shutdown")
        assert await exit_status(process) == 0
    finally:
        os.close(out_read)
        os.close(err_read)
