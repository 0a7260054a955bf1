"""The flows a host serves and, for the in-process runtime, their imported handlers."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from flowhost.engine.definitions import DefinitionProblem, FlowDefinition, StepDefinition
from flowhost.engine.discovery import discover, source_suffixes
from flowhost.errors import FlowNotFoundError
from flowhost.workers.commands import RuntimeCommands
from flowhost_worker.loader import MODULE_PREFIX, function_files, load_module

Handler = Callable[[Any, Any], Awaitable[Any]]
Fingerprint = frozenset[tuple[str, int, int]]


class FunctionCatalog:
    """The current flow definitions of a project; `reload()` swaps them atomically."""

    def __init__(self, functions_dir: Path, commands: RuntimeCommands | None = None) -> None:
        self.functions_dir = functions_dir.resolve()
        self.commands = commands or RuntimeCommands()
        self.flows: dict[str, FlowDefinition] = {}
        self.problems: list[DefinitionProblem] = []
        self._modules: dict[str, ModuleType] = {}
        self.loaded_fingerprint: Fingerprint = frozenset()

    def fingerprint(self) -> Fingerprint:
        """Path, mtime and size of every function file: changes when any file does."""
        stats = []
        for path in function_files(self.functions_dir, source_suffixes(self.commands)):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            stats.append((str(path), stat.st_mtime_ns, stat.st_size))
        return frozenset(stats)

    async def reload(self) -> None:
        # Taken first: a file changed while discovery runs makes the next check reload again.
        fingerprint = self.fingerprint()
        found = await discover(self.functions_dir, self.commands)
        self.loaded_fingerprint = fingerprint
        self.flows, self.problems = found.flows, found.problems
        self._modules.clear()
        # Forget imported function modules, so the in-process runtime imports the new code.
        for name in [
            n for n in sys.modules if n == MODULE_PREFIX or n.startswith(MODULE_PREFIX + ".")
        ]:
            del sys.modules[name]

    def flow(self, name: str) -> FlowDefinition:
        """The flow named `name`; FlowNotFoundError says why there is none (its problems, or
        the flows there are)."""
        flow = self.flows.get(name)
        if flow is not None:
            return flow
        problems = [str(p) for p in self.problems if p.flow == name]
        if problems:
            raise FlowNotFoundError(f"flow {name!r} is invalid:\n  " + "\n  ".join(problems))
        known = ", ".join(sorted(self.flows)) or "none"
        raise FlowNotFoundError(f"unknown flow {name!r} (flows: {known})")

    def handler(self, step: StepDefinition, function: str | None = None) -> Handler:
        """Import `step`'s handler into this process (the in-process runtime), or with
        `function`, another function of its file (an await hook)."""
        name = function or step.function
        module = self._modules.get(step.file)
        if module is None:
            module = self._modules[step.file] = load_module(self.functions_dir, Path(step.file))
        handler = getattr(module, name, None)
        if not callable(handler):
            raise LookupError(f"{step.location}: function {name!r} is gone")
        return handler  # type: ignore[no-any-return]
