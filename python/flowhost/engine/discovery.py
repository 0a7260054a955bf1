"""Discovery: a child process describes the function files; the host never imports them for it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path

from flowhost.engine.definitions import (
    DefinitionProblem,
    FlowDefinition,
    StepDefinition,
    build_flows,
)
from flowhost.errors import DiscoveryError

DESCRIBE_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class Discovery:
    flows: dict[str, FlowDefinition]
    problems: list[DefinitionProblem]


async def discover(functions_dir: Path, python: str = sys.executable) -> Discovery:
    """Describe `functions_dir/**/*.py` and assemble the valid flows."""
    if not functions_dir.is_dir():
        raise DiscoveryError(f"no functions directory at {functions_dir}")
    process = await asyncio.create_subprocess_exec(
        python,
        "-m",
        "flowhost_worker.describe",
        str(functions_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), DESCRIBE_TIMEOUT)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise DiscoveryError(
            f"describing {functions_dir} took longer than {DESCRIBE_TIMEOUT:.0f}s "
            "(does a function file block at import?)"
        ) from exc
    if process.returncode != 0:
        raise DiscoveryError(
            f"describing {functions_dir} failed ({python} exit {process.returncode}): "
            f"{stderr.decode(errors='replace').strip()[-2000:]}"
        )
    try:
        description = json.loads(stdout)
        steps = [StepDefinition.from_description(item) for item in description["steps"]]
        load_problems = [
            DefinitionProblem(p["file"], int(p["line"]), p["message"])
            for p in description["problems"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise DiscoveryError(f"unreadable description of {functions_dir}: {exc}") from exc
    flows, flow_problems = build_flows(steps)
    return Discovery(flows=flows, problems=load_problems + flow_problems)
