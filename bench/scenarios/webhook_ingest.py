"""Signed webhook → 202 with the run durable, against a real `flowhost serve` subprocess.

A webhook trigger `push` with GitHub auth (HMAC-SHA256 of the body) and the default delivery-id
dedupe (`X-GitHub-Delivery`), subscribed by a one-step flow. The server is `flowhost serve` on
loopback (uvicorn on uvloop with httptools); nothing runs the steps, so what is measured is the
ingest: verify, fire, commit, answer. Each repetition serves twice, with `--workers 1` and
with one worker process per core (WORKERS; once on a one-core machine).

- `p50_ms_idle` (`--workers 1`): requests one at a time on one keep-alive connection (a raw
  HTTP/1.1 client, a few µs of its own), each a fresh delivery; the time from writing the
  request to reading the whole answer.
- `req_per_s_<N>_worker(s)`: wrk (`apt-get install wrk`) with CONNECTIONS keep-alive
  connections for 10 s, each request a fresh delivery id (GitHub signs only the body, so one
  signature serves every request). The anchor is the same wrk against `/healthz` of the same
  server in the same repetition: the ceiling of the HTTP stack and the load generator together.
- `serve_cpu_us_per_req_<N>_worker(s)`: CPU time of the serving processes per request under
  wrk (from /proc), which a busy shared machine distorts less than the rate; the Postgres
  processes' share is logged beside it.
- `lost`: every 2xx answer names its run (the wrk script writes the run ids of the 2xx answers
  to a file per thread); each must be a row of `flowhost.runs`. Must be 0.

The load average is logged beside the figures: this machine's 2 cores are shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg

from bench.engine_drain import temporary_project
from bench.harness import Context, Measurement
from flowhost.triggers import service
from flowhost.triggers.declarations import TriggerSpec

NAME = "webhook_ingest"
DESCRIPTION = "signed GitHub webhook → 202 with the run durable: idle p50, req/s under wrk, lost"

SECRET = "bench-github-secret"
CONNECTIONS = 64
# `flowhost serve --workers`: one process, and one per core (the same when there is one core).
WORKERS = os.cpu_count() or 1
FLOWS = {
    "ingest.py": """
from flowhost_worker import step

@step(flow="ingest", entry=True, isolation="inprocess")
async def ingest(data, ctx):
    return None
"""
}
BODY = json.dumps({"ref": "refs/heads/main", "commits": [{"id": "a" * 40, "message": "x" * 200}]})
READY = re.compile(r"http ready: (http://\S+)")
WRK_SCRIPT = r"""
local counter = 0
ok, bad = 0, 0
local threads = {}
local out
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  out = io.open(args[1] .. "/ids-" .. id, "w")
  out:setvbuf("line")
end
request = function()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = args_prefix .. "-" .. id .. "-" .. counter
  return wrk.format("POST", nil, nil, nil)
end
response = function(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    local run = body:match('"runId":"([%x%-]+)"')
    if run then out:write(run, "\n") end
  else
    bad = bad + 1
  end
end
done = function(summary, latency, requests)
  local total_ok, total_bad = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_bad = total_bad + t:get("bad")
  end
  io.write(string.format("RESULT ok=%d bad=%d\n", total_ok, total_bad))
end
"""


def signed_headers() -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), BODY.encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (robust on a shared machine, unlike rates)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time so far of a process and of its live descendants (the serve workers)."""
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                total += tree_cpu_seconds(int(child))
    return total


async def postgres_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each process of the Postgres server (backends and background
    workers), when it runs on this machine."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        rows = await (await conn.execute("SELECT pid FROM pg_stat_activity")).fetchall()
    found = {}
    for (pid,) in rows:
        with contextlib.suppress(OSError):
            found[pid] = cpu_seconds(pid)
    return found


@contextlib.asynccontextmanager
async def flowhost_serve(
    project_dir: Path, url: str, workers: int = 1, **env: str
) -> AsyncIterator[tuple[str, int]]:
    """`flowhost serve --workers N` on a free loopback port (with `env` added to its
    environment); yields its base URL and pid."""
    environ = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1", **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowhost",
        "--project",
        str(project_dir),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        str(workers),
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError("flowhost serve exited before it was ready")
                found = READY.search(line)
                if found:
                    break
        drain = asyncio.create_task(_drain(process.stdout))
        yield found.group(1), process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        with contextlib.suppress(NameError):
            await drain


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


class RawClient:
    """HTTP/1.1 on one keep-alive connection, with nothing between the socket and the clock."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        return status, await self.reader.readexactly(length)


async def idle_latencies(base: str, requests: int) -> list[float]:
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    client = RawClient(reader, writer)
    headers = signed_headers()
    times = []
    try:
        for n in range(requests):
            headers["X-GitHub-Delivery"] = f"idle-{uuid.uuid4()}"
            started = time.perf_counter()
            status, _ = await client.post("/hooks/push", headers, BODY.encode())
            times.append((time.perf_counter() - started) * 1000)
            if status != 202:
                raise RuntimeError(f"webhook_ingest: an idle delivery was answered {status}")
            if n % 50 == 0:
                await asyncio.sleep(0.005)  # stay idle: no queue builds up
    finally:
        writer.close()
    return times


async def wrk(url: str, seconds: int, script: Path | None, workdir: Path) -> tuple[float, str]:
    """(requests/s, wrk's output)."""
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if script is not None:
        command += ["--", str(workdir)]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output = (await process.communicate())[0].decode()
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed: {output}")
    return float(found.group(1)), output


@dataclasses.dataclass
class Load:
    """What one wrk run against one `flowhost serve --workers N` measured."""

    workers: int
    rate: float
    anchor: float
    ok: int
    bad: int
    lost: int
    server_cpu_us: float
    postgres_cpu_us: float

    def describe(self) -> str:
        return (
            f"--workers {self.workers}: {self.rate:.0f} req/s ({self.ok} 2xx, {self.bad} other, "
            f"{self.lost} lost) against /healthz {self.anchor:.0f} req/s; serve CPU "
            f"{self.server_cpu_us:.0f} µs/request, Postgres CPU "
            f"{self.postgres_cpu_us:.0f} µs/request"
        )


async def under_wrk(
    url: str, base: str, pid: int, workers: int, seconds: int, scratch: Path
) -> Load:
    """wrk against /healthz (the anchor), then against the webhook, on a running server."""
    workdir = scratch / f"workers-{workers}"
    workdir.mkdir()
    script = workdir / "post.lua"
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in signed_headers().items())
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY)}\n{headers}'
        f'args_prefix = "{uuid.uuid4()}"\n{WRK_SCRIPT}'
    )
    anchor, _ = await wrk(f"{base}/healthz", seconds, None, workdir)
    cpu_before = tree_cpu_seconds(pid)
    pg_before = await postgres_cpu(url)
    rate, output = await wrk(f"{base}/hooks/push", seconds, script, workdir)
    server_cpu = tree_cpu_seconds(pid) - cpu_before
    pg_after = await postgres_cpu(url)
    pg_cpu = sum(pg_after[p] - pg_before[p] for p in pg_after if p in pg_before)
    result = re.search(r"RESULT ok=(\d+) bad=(\d+)", output)
    if result is None:
        raise RuntimeError(f"the wrk script did not report: {output}")
    ok, bad = int(result.group(1)), int(result.group(2))
    ids = [line for path in workdir.glob("ids-*") for line in path.read_text().splitlines() if line]
    if len(ids) != ok:
        raise RuntimeError(f"webhook_ingest: {ok} 2xx answers but {len(ids)} run ids")
    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) FROM flowhost.runs WHERE id = ANY (%s::uuid[])", [ids]
            )
        ).fetchone()
    found = row[0] if row is not None else 0
    requests = max(1, ok + bad)
    return Load(
        workers,
        rate,
        anchor,
        ok,
        bad,
        ok - found,
        server_cpu / requests * 1e6,
        pg_cpu / requests * 1e6,
    )


async def run(ctx: Context) -> list[Measurement]:
    if shutil.which("wrk") is None:
        raise RuntimeError("webhook_ingest needs wrk (apt-get install wrk)")
    seconds = 10 if not ctx.quick else 3
    idle_requests = ctx.size(1000, quick=200)
    ctx.log(f"load before: {os.getloadavg()[0]:.2f} (1 min avg, {os.cpu_count()} cores)")
    loads: list[Load] = []
    async with ctx.fresh_database("webhooks") as url, temporary_project(url, FLOWS) as project:
        async with project.database.transaction() as conn:
            spec = TriggerSpec("push", "webhook", {"auth": {"scheme": "github", "secret": SECRET}})
            await service.create_trigger(conn, spec, subscribe={"ingest": "auto"})
        with tempfile.TemporaryDirectory(prefix="fh-wrk-") as scratch:
            for workers in sorted({1, WORKERS}):
                serving = flowhost_serve(project.settings.project_dir, url, workers)
                async with serving as (base, pid):
                    await idle_latencies(base, 50)  # warm-up: caches, pool, JIT of nothing
                    if workers == 1:
                        latencies = await idle_latencies(base, idle_requests)
                    loads.append(await under_wrk(url, base, pid, workers, seconds, Path(scratch)))
    ctx.log(f"idle p50 {statistics.median(latencies):.2f} ms (--workers 1)")
    for load in loads:
        ctx.log(load.describe())
    ctx.log(f"load after: {os.getloadavg()[0]:.2f}")
    measurements = [
        Measurement("p50_ms_idle", statistics.median(latencies), "ms", higher_is_better=False)
    ]
    for load in loads:
        suffix = f"{load.workers}_worker{'s' if load.workers > 1 else ''}"
        measurements += [
            Measurement(
                f"req_per_s_{suffix}",
                load.rate,
                "req/s",
                anchor=f"wrk_healthz_req_per_s_{suffix}",
                anchor_value=load.anchor,
            ),
            Measurement(
                f"serve_cpu_us_per_req_{suffix}",
                load.server_cpu_us,
                "µs",
                higher_is_better=False,
            ),
        ]
    measurements += [
        Measurement(
            "non_2xx", float(sum(load.bad for load in loads)), "answers", higher_is_better=False
        ),
        Measurement(
            "lost", float(sum(load.lost for load in loads)), "runs", higher_is_better=False
        ),
    ]
    return measurements
