"""Many open SSE streams from one process, as cheap as a client can be (raw sockets; frames
are counted, not parsed), for `sse_load`.

Reads one JSON object on stdin: {"host", "port", "token", "paths": [...]}; opens one stream
per path; prints `live <n>` once every stream said `: live` (subscribed); counts the frames
(`id:` lines) until SIGTERM or stdin closes, then prints `frames <n> ended <n>` and exits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any


class Counts:
    def __init__(self) -> None:
        self.live = 0
        self.frames = 0
        self.ended = 0
        self.all_live = asyncio.Event()


async def follow(host: str, port: int, token: str, path: str, counts: Counts, total: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    live = False
    tail = b""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            data = tail + chunk
            if b"event: end\n" in data:
                counts.ended += 1  # the run is over: its stream ends (the connection stays)
            if not live and b": live" in data:
                live = True
                counts.live += 1
                if counts.live == total:
                    counts.all_live.set()
            counts.frames += data.count(b"\nid: ") + data.startswith(b"id: ")
            tail = data[-8:]
            # A frame split between two reads is counted once (the tail is re-read).
            counts.frames -= tail.count(b"\nid: ")
    finally:
        writer.close()


async def main() -> None:
    config: dict[str, Any] = json.loads(sys.stdin.readline())
    paths: list[str] = config["paths"]
    counts = Counts()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [
        asyncio.create_task(
            follow(config["host"], config["port"], config["token"], p, counts, len(paths))
        )
        for p in paths
    ]
    await counts.all_live.wait()
    print(f"live {counts.live}", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"frames {counts.frames} ended {counts.ended}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
