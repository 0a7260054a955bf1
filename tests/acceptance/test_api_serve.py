"""`flowhost serve` as an operator runs it: the API alone on a real uvicorn, against a real
Postgres, with the token from the environment; and what it refuses, over real sockets."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.api import TOKEN, assert_problem
from tests.support.cli import flowhost, read_until, start_flowhost
from tests.support.engine import write_functions

GREET = """
from flowhost_worker import step

@step(flow="greet", entry=True)
async def hello(data, ctx):
    return {"hello": data.get("name")}
"""
LIMIT = 4096


def test_serve_answers_the_api_on_a_real_server(tmp_path: Path, database_url: str) -> None:
    project = write_functions(tmp_path, {"greet.py": GREET})
    seen: list[str] = []
    with start_flowhost(
        "serve",
        "--port",
        "0",
        project=project,
        database_url=database_url,
        FLOWHOST_API_TOKEN=TOKEN,
        FLOWHOST_MAX_BODY_BYTES=str(LIMIT),
    ) as server:
        try:
            line = read_until(server, "http ready:", seen)
            url = line.split("http ready:")[1].split()[0]
            read_until(server, "api ready:", seen)
            token_line = read_until(server, "api token:", seen)
            answers = exercise(url)
        finally:
            server.send_signal(signal.SIGINT)
            code = server.wait(timeout=30)
        rest = server.stdout.read() if server.stdout else ""
    output = "".join(seen) + rest
    assert code == 0, output
    assert "stopped" in rest
    # A configured token is the operator's: never printed.
    assert TOKEN not in output and "the api_token setting" in token_line
    assert answers["healthz"].status_code == 200
    assert answers["readyz"].json()["status"] == "ready"
    assert answers["openapi"].json()["info"]["title"] == "flowhost"
    assert_problem(answers["anonymous"], 401)
    assert answers["anonymous"].headers["www-authenticate"] == 'Bearer realm="flowhost"'
    started = answers["start"]
    assert started.status_code == 201, started.text
    assert started.headers["location"] == f"/api/runs/{started.json()['id']}"
    # Nothing runs steps here: the run waits for a host.
    assert started.json()["served"] is False
    assert answers["run"].json()["steps"][0]["status"] == "queued"
    assert_problem(answers["declared too large"], 413)
    assert_problem(answers["streamed too large"], 413)
    assert_problem(answers["malformed"], 400)
    assert_problem(answers["not json"], 415)
    assert_problem(answers["method"], 405)
    assert answers["method"].headers["allow"] == "GET, POST"


def exercise(url: str) -> dict[str, httpx.Response]:
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1000

    with httpx.Client(base_url=url, timeout=30) as client:
        started = client.post(
            "/api/runs", json={"flow": "greet", "input": {"name": "x"}}, headers=auth
        )
        return {
            "healthz": client.get("/healthz"),
            "readyz": client.get("/readyz"),
            "openapi": client.get("/api/openapi.json"),
            "anonymous": client.get("/api/runs"),
            "start": started,
            "run": client.get(started.headers.get("location", "/api/runs/x"), headers=auth),
            "declared too large": client.post(
                "/api/runs",
                content=b"{" + b" " * LIMIT + b"}",
                headers={**auth, "Content-Type": "application/json"},
            ),
            "streamed too large": client.post(
                "/api/runs",
                content=chunks(),
                headers={**auth, "Content-Type": "application/json"},
            ),
            "malformed": client.post(
                "/api/runs", content=b"{", headers={**auth, "Content-Type": "application/json"}
            ),
            "not json": client.post(
                "/api/runs", content=b"flow", headers={**auth, "Content-Type": "text/plain"}
            ),
            "method": client.put("/api/runs", json={}, headers=auth),
        }


def test_serve_on_a_taken_port_says_so(tmp_path: Path, database_url: str) -> None:
    project = write_functions(tmp_path, {"greet.py": GREET})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = flowhost("serve", "--port", str(port), project=project, database_url=database_url)
    assert result.returncode == 2, result.stderr
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in result.stderr
