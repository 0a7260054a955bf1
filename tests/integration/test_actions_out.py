"""Actions out of steps, against a real mosquitto, a real RabbitMQ and a real HTTP server: runs
publish messages that real subscribers receive, from in-process steps and from Python and Node
children; a retried step publishes again (with the same AMQP message id); HTTP requests expand
their placeholders on the host, keep secrets out of the step and of the run's events, and cap
what they record; a broker that is down fails the publish and shows in the connector's state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flowhost.connectors.local_brokers import free_port
from flowhost.project import Project
from flowhost.store.events import events_of_run
from tests.support.brokers import Mosquitto, RabbitMQ
from tests.support.connectors import states, wait_until
from tests.support.engine import running_host, start, wait_for_run, write_functions

SECRET = "s3cr3t-token-value"


def project(root: Path, files: dict[str, str], connectors: dict[str, dict[str, Any]]) -> Path:
    write_functions(root, files)
    lines = ['http_secrets = ["TEST_PARTNER_TOKEN"]']
    for name, table in connectors.items():
        lines.append(f"[connectors.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    (root / "flowhost.toml").write_text("\n".join(lines) + "\n")
    return root


def brokers(mosquitto: Mosquitto, rabbitmq: RabbitMQ) -> dict[str, dict[str, Any]]:
    return {
        "plant": {"url": mosquitto.url, "protocol": "5"},
        "rabbit": {
            "url": f"amqp://{rabbitmq.USER}@127.0.0.1:{rabbitmq.port}/",
            "password_env": "TEST_RABBIT_PASSWORD",
        },
    }


def python_step(flow: str, body: str, **options: Any) -> str:
    extra = "".join(f", {key}={value!r}" for key, value in options.items())
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    return (
        "from flowhost_worker import step\n\n"
        f"@step(flow={flow!r}, entry=True{extra})\n"
        f"async def run(data, ctx):\n{lines}\n"
    )


async def events(project: Project, run_id: uuid.UUID, kind: str) -> list[Any]:
    async with project.database.connection() as conn:
        found = await events_of_run(conn, run_id)
    return [e for e in found if e.type == kind]


@contextlib.asynccontextmanager
async def mqtt_subscriber(broker: Mosquitto, topic: str) -> AsyncIterator[list[Any]]:
    """Messages on `topic` as a real client receives them, collected while the block runs."""
    import aiomqtt

    received: list[Any] = []
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        identifier=f"test-subscriber-{uuid.uuid4().hex[:8]}",
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                received.append(message)

        task = asyncio.create_task(collect())
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def amqp_queue(broker: RabbitMQ, queue: str) -> AsyncIterator[list[Any]]:
    """A queue declared by a real consumer, and the messages it receives."""
    import aio_pika

    received: list[Any] = []
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True)

        async def take(message: Any) -> None:
            async with message.process():
                received.append(message)

        await declared.consume(take)
        yield received


async def test_steps_in_process_and_in_children_publish_to_real_subscribers(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto, rabbitmq: RabbitMQ, monkeypatch: Any
) -> None:
    monkeypatch.setenv("TEST_RABBIT_PASSWORD", rabbitmq.PASSWORD)
    queue = f"out-{uuid.uuid4().hex[:8]}"
    body = f"""
sent = await ctx.publish.mqtt("out/" + ctx.flow_name, {{"n": data["n"]}}, qos=1,
                              user_properties={{"run": ctx.run_id}})
queued = await ctx.publish.amqp("", {queue!r}, "text " + str(data["n"]),
                                headers={{"flow": ctx.flow_name}})
return {{"mqtt": sent, "amqp": queued}}
"""
    files = {
        "here.py": python_step("here", body, isolation="inprocess"),
        "child.py": python_step("child", body),
    }
    flows = ("here", "child")
    root = project(tmp_path, files, brokers(mosquitto, rabbitmq))
    async with (
        mqtt_subscriber(mosquitto, "out/#") as topics,
        amqp_queue(rabbitmq, queue) as queued,
        running_host(root, database_url) as running,
    ):
        runs = {flow: await start(running, flow, {"n": n}) for n, flow in enumerate(flows)}
        results = {}
        for flow, run_id in runs.items():
            run = await wait_for_run(running, run_id)
            assert run["status"] == "completed", run
            results[flow] = run["result"]
        await wait_until(lambda: len(topics) >= 2 and len(queued) >= 2, what="4 messages")
        published = await events(running, runs["child"], "publish")
        rows = await states(running.database, "plant")

    by_topic = {m.topic.value: m for m in topics}
    assert json.loads(by_topic["out/here"].payload) == {"n": 0}
    assert json.loads(by_topic["out/child"].payload) == {"n": 1}
    assert by_topic["out/child"].properties.UserProperty == [("run", str(runs["child"]))]
    assert sorted(m.body for m in queued) == [b"text 0", b"text 1"]
    child_message = next(m for m in queued if m.body == b"text 1")
    assert child_message.headers == {"flow": "child"}
    assert child_message.content_type == "text/plain; charset=utf-8"
    assert child_message.message_id == f"{runs['child']}:run:publish:1"
    assert results["child"]["mqtt"] == {
        "connector": "plant",
        "topic": "out/child",
        "qos": 1,
        "retain": False,
        "size": 7,
    }
    assert results["child"]["amqp"]["routed"] is True
    assert [e.data["kind"] for e in published] == ["mqtt", "amqp"]
    assert all(e.data["outcome"] == "published" and e.attempt == 1 for e in published)
    assert published[1].data["routing_key"] == queue and published[1].data["size"] == 6
    # One publishing connection for the host, shared by both steps, in the states.
    [publishing] = [s for s in rows if s.role == "publish"]
    assert publishing.state == "connected" and publishing.address == mosquitto.url


async def test_a_retried_step_publishes_again_with_the_same_amqp_message_id(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto, rabbitmq: RabbitMQ, monkeypatch: Any
) -> None:
    monkeypatch.setenv("TEST_RABBIT_PASSWORD", rabbitmq.PASSWORD)
    queue = f"again-{uuid.uuid4().hex[:8]}"
    body = f"""
await ctx.publish.amqp("", {queue!r}, {{"attempt": ctx.attempt}})
if ctx.attempt == 1:
    raise RuntimeError("failed after publishing")
return "done"
"""
    files = {"again.py": python_step("again", body, attempts=2)}
    root = project(tmp_path, files, brokers(mosquitto, rabbitmq))
    async with amqp_queue(rabbitmq, queue) as queued, running_host(root, database_url) as running:
        run_id = await start(running, "again", {})
        run = await wait_for_run(running, run_id)
        assert run["status"] == "completed", run
        await wait_until(lambda: len(queued) >= 2, what="both attempts' messages")
        published = await events(running, run_id, "publish")
    assert [json.loads(m.body) for m in queued] == [{"attempt": 1}, {"attempt": 2}]
    assert {m.message_id for m in queued} == {f"{run_id}:run:publish:1"}
    assert [(e.attempt, e.data["outcome"]) for e in published] == [
        (1, "published"),
        (2, "published"),
    ]


async def test_a_broker_that_is_down_fails_the_publish_and_shows_in_the_state(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()  # nothing listens there
    body = """
await ctx.publish.mqtt("nowhere", "x", connector="gone")
"""
    files = {"down.py": python_step("down", body, isolation="inprocess", attempts=1)}
    connectors = {"gone": {"url": f"mqtt://127.0.0.1:{port}", "backoff_initial": 5}}
    root = project(tmp_path, files, connectors)
    async with running_host(root, database_url) as running:
        run_id = await start(running, "down", {})
        run = await wait_for_run(running, run_id)
        [published] = await events(running, run_id, "publish")
        [row] = await states(running.database, "gone")
    assert run["status"] == "failed"
    assert run["error"]["type"] == "ActionError"
    assert "publishing to connector gone" in run["error"]["message"]
    assert published.data["outcome"] == "failed" and published.data["topic"] == "nowhere"
    assert row.role == "publish" and row.state == "backing_off" and row.attempt == 1
    assert row.last_error and str(port) in row.last_error


# -- HTTP -----------------------------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with what it received (as JSON); /slow after a while, /big with
    10 KiB."""

    seen: list[dict[str, Any]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        seen = {
            "method": self.command,
            "path": self.path,
            "headers": dict(self.headers.items()),
            "body": body,
        }
        self.seen.append(seen)
        if self.path.startswith("/slow"):
            time.sleep(2)
        payload = (
            json.dumps({"big": "x" * 10_240}) if self.path.startswith("/big") else json.dumps(seen)
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "session=abc")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


HTTP_STEP = """
answer = await ctx.http(
    "PUT",
    data["url"] + "/orders/{run_id}",
    headers={"X-Attempt": "{attempt}", "X-Region": "{env:TEST_REGION}", "X-Id": "{uuid}"},
    query={"at": "{timestamp}"},
    body='{"key": "{idempotency_key}", "raw": "{not_a_placeholder}"}',
    auth={"type": "bearer", "token": "{secret:TEST_PARTNER_TOKEN}"},
    timeout=5,
)
big = await ctx.http("GET", data["url"] + "/big", auth={
    "type": "api_key", "name": "api_key", "value": "{secret:TEST_PARTNER_TOKEN}", "in": "query"})
try:
    await ctx.http("GET", data["url"] + "/slow", timeout=0.5)
except Exception as exc:
    slow = type(exc).__name__ + ": " + str(exc)
try:
    await ctx.http("GET", data["url"] + "/{env:TEST_UNDECLARED}")
except ValueError as exc:
    refused = str(exc)
return {"answer": answer, "big": len(big["body"]), "slow": slow, "refused": refused}
"""


@pytest.mark.parametrize("isolation", ["inprocess", "python"])
async def test_http_actions_expand_placeholders_and_keep_secrets_out(
    tmp_path: Path,
    database_url: str,
    http_server: tuple[str, list[dict[str, Any]]],
    monkeypatch: Any,
    isolation: str,
) -> None:
    url, seen = http_server
    monkeypatch.setenv("TEST_PARTNER_TOKEN", SECRET)
    monkeypatch.setenv("TEST_REGION", "eu-1")
    monkeypatch.setenv("TEST_UNDECLARED", "hidden")
    options: dict[str, Any] = {"env": ["TEST_REGION"]}
    if isolation == "inprocess":
        options["isolation"] = "inprocess"
    root = project(tmp_path, {"call.py": python_step("call", HTTP_STEP, **options)}, {})
    async with running_host(root, database_url) as running:
        run_id = await start(running, "call", {"url": url})
        run = await wait_for_run(running, run_id)
        recorded = await events(running, run_id, "http")
    assert run["status"] == "completed", run
    result = run["result"]

    # What the server received: everything expanded, the secret included.
    put = seen[0]
    assert put["method"] == "PUT" and put["path"].startswith(f"/orders/{run_id}?at=")
    assert put["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert put["headers"]["X-Attempt"] == "1" and put["headers"]["X-Region"] == "eu-1"
    uuid.UUID(put["headers"]["X-Id"])
    assert json.loads(put["body"]) == {"key": f"{run_id}:run", "raw": "{not_a_placeholder}"}
    assert seen[1]["path"] == f"/big?api_key={SECRET}"
    assert len(seen) == 3, "the refused request was sent"  # put, big, slow

    # What the step got: the answer, with the secret the server echoed scrubbed.
    answer = result["answer"]
    assert answer["status"] == 201 and answer["ok"] is True
    assert answer["json"]["headers"]["Authorization"] == "Bearer [secret:TEST_PARTNER_TOKEN]"
    assert SECRET not in json.dumps(result)
    assert result["big"] > 10_240
    assert result["slow"].startswith("ActionError: HTTP GET ") and "within 0.5s" in result["slow"]
    assert "TEST_UNDECLARED" in result["refused"] and "declares" in result["refused"]

    # What the run recorded: no secret anywhere, samples capped.
    assert SECRET not in json.dumps([e.data for e in recorded])
    first, second, third = (e.data for e in recorded)
    assert first["method"] == "PUT" and first["outcome"] == "ok"
    assert first["request"]["headers"]["authorization"] == "[redacted]"
    assert first["response"]["status"] == 201
    assert first["response"]["headers"]["set-cookie"] == "[redacted]"
    assert "[secret:TEST_PARTNER_TOKEN]" in first["response"]["body"]
    assert second["url"].endswith("/big?api_key=[secret:TEST_PARTNER_TOKEN]")
    assert second["response"]["size"] > 10_240 and second["response"]["truncated"] is True
    assert len(second["response"]["body"]) == 4096
    assert third["outcome"] == "error" and "within 0.5s" in third["error"]
    assert third["response"] is None


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
async def test_node_steps_publish_and_call_http(
    tmp_path: Path,
    database_url: str,
    mosquitto: Mosquitto,
    rabbitmq: RabbitMQ,
    http_server: tuple[str, list[dict[str, Any]]],
    monkeypatch: Any,
) -> None:
    monkeypatch.setenv("TEST_RABBIT_PASSWORD", rabbitmq.PASSWORD)
    monkeypatch.setenv("TEST_PARTNER_TOKEN", SECRET)
    url, seen = http_server
    queue = f"node-{uuid.uuid4().hex[:8]}"
    source = f"""
import {{ defineFunction }} from '@flowhost/worker'
export const config = {{ flow: {{ name: 'node_out', step: 'run', role: 'entry' }} }}
export default defineFunction(async (input, ctx) => {{
  const mqtt = await ctx.publish.mqtt('out/node', {{ n: 1 }}, {{ qos: 1 }})
  const amqp = await ctx.publish.amqp('', {queue!r}, Buffer.from('raw'), {{ headers: {{ a: 1 }} }})
  const answer = await ctx.http('POST', input.url + '/hook', {{
    json: {{ run: ctx.runId }},
    auth: {{ type: 'basic', username: 'me', password: '{{secret:TEST_PARTNER_TOKEN}}' }},
  }})
  return {{ mqtt, amqp, status: answer.status, echoed: answer.json.body }}
}})
"""
    root = project(tmp_path, {"node_out.js": source}, brokers(mosquitto, rabbitmq))
    async with (
        mqtt_subscriber(mosquitto, "out/node") as topics,
        amqp_queue(rabbitmq, queue) as queued,
        running_host(root, database_url) as running,
    ):
        run_id = await start(running, "node_out", {"url": url})
        run = await wait_for_run(running, run_id)
        assert run["status"] == "completed", run
        await wait_until(lambda: topics and queued, what="the node step's messages")
        recorded = await events(running, run_id, "http")
    assert json.loads(topics[0].payload) == {"n": 1}
    assert queued[0].body == b"raw" and queued[0].headers == {"a": 1}
    result = run["result"]
    assert result["mqtt"]["topic"] == "out/node" and result["amqp"]["routed"] is True
    assert result["status"] == 201 and json.loads(result["echoed"]) == {"run": str(run_id)}
    assert seen[0]["headers"]["Authorization"].startswith("Basic ")
    assert SECRET not in json.dumps([e.data for e in recorded])
