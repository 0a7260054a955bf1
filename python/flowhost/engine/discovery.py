"""Discovery: child processes describe the function files; the host never imports them for it.

Python files are described by the interpreter that will run them (a directory with its own
`.venv` is described by that venv's Python), JavaScript files by Node through the SDK's
describer. Every describer prints the same JSON shape (docs/protocol.md, "Starting a child").
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowhost.engine.definitions import (
    DefinitionProblem,
    FlowDefinition,
    StepDefinition,
    build_flows,
)
from flowhost.errors import ConfigurationError, DiscoveryError
from flowhost.workers.commands import RuntimeCommands, venv_root_python
from flowhost_worker.loader import function_files

DESCRIBE_TIMEOUT = 60.0
PYTHON_SUFFIXES = (".py",)
NODE_SUFFIXES = (".js", ".mjs")
# Described only when Node runs with a loader for them (`node_args`, e.g. "--import tsx").
TYPESCRIPT_SUFFIXES = (".ts", ".mts")


@dataclasses.dataclass(frozen=True, slots=True)
class Discovery:
    flows: dict[str, FlowDefinition]
    problems: list[DefinitionProblem]


def source_suffixes(commands: RuntimeCommands) -> tuple[str, ...]:
    typescript = TYPESCRIPT_SUFFIXES if commands.node_args else ()
    return PYTHON_SUFFIXES + NODE_SUFFIXES + typescript


async def discover(functions_dir: Path, commands: RuntimeCommands | None = None) -> Discovery:
    """Describe the function files under `functions_dir` and assemble the valid flows."""
    commands = commands or RuntimeCommands()
    if not functions_dir.is_dir():
        raise DiscoveryError(f"no functions directory at {functions_dir}")
    root = functions_dir.resolve()
    files = function_files(root, source_suffixes(commands))
    jobs = [
        _describe(argv, runtime, interpreter)
        for argv, runtime, interpreter in _python_describers(
            root, [f for f in files if f.suffix in PYTHON_SUFFIXES], commands
        )
    ]
    node_files = [f for f in files if f.suffix not in PYTHON_SUFFIXES]
    load_problems: list[DefinitionProblem] = []
    if node_files:
        try:
            argv = [*commands.node_script("describe.js"), str(root)]
            argv += [
                f"--ext={suffix}"
                for suffix in source_suffixes(commands)
                if suffix in TYPESCRIPT_SUFFIXES
            ]
            jobs.append(_describe(argv, "node", None))
        except ConfigurationError as exc:
            load_problems += [DefinitionProblem(str(f), 1, str(exc)) for f in node_files]
    steps: list[StepDefinition] = []
    for found_steps, found_problems in await asyncio.gather(*jobs):
        steps += found_steps
        load_problems += found_problems
    flows, flow_problems = build_flows(steps)
    return Discovery(flows=flows, problems=load_problems + flow_problems)


def _python_describers(
    root: Path, files: list[Path], commands: RuntimeCommands
) -> list[tuple[list[str], str, str]]:
    """One describer per interpreter: each `.venv` directory's own, the default for the rest."""
    venv_roots = sorted(
        {found.parents[2] for f in files if (found := venv_root_python(f.parent, root))}
    )
    describers = []
    base = ["-m", "flowhost_worker.describe", str(root)]
    if any(not any(f.is_relative_to(v) for v in venv_roots) for f in files):
        excluded = [f"--exclude={v}" for v in venv_roots]
        describers.append(([commands.python, *base, *excluded], "python", commands.python))
    for venv in venv_roots:
        python = str(venv / ".venv" / "bin" / "python")
        nested = [f"--exclude={v}" for v in venv_roots if v != venv and v.is_relative_to(venv)]
        describers.append(([python, *base, f"--only={venv}", *nested], "python", python))
    return describers


async def _describe(
    argv: list[str], runtime: str, interpreter: str | None
) -> tuple[list[StepDefinition], list[DefinitionProblem]]:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        raise DiscoveryError(f"cannot run {argv[0]} to describe functions: {exc}") from exc
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), DESCRIBE_TIMEOUT)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise DiscoveryError(
            f"describing functions with {argv[0]} took longer than {DESCRIBE_TIMEOUT:.0f}s "
            "(does a function file block at import?)"
        ) from exc
    if process.returncode != 0:
        raise DiscoveryError(
            f"describing functions failed ({argv[0]} exit {process.returncode}): "
            f"{stderr.decode(errors='replace').strip()[-2000:]}"
        )
    try:
        description: Mapping[str, Any] = json.loads(stdout)
        steps = [
            StepDefinition.from_description(item, runtime=runtime, interpreter=interpreter)
            for item in description["steps"]
        ]
        problems = [
            DefinitionProblem(p["file"], int(p["line"]), p["message"])
            for p in description["problems"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise DiscoveryError(f"unreadable description from {argv[0]}: {exc}") from exc
    return steps, problems
