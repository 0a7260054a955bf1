"""Import step-function files by path, and report a failure with its file and line."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from flowhost_worker.config import StepConfig
from flowhost_worker.step import step_config

MODULE_PREFIX = "flowhost_functions"
SKIPPED_DIRECTORIES = {"__pycache__", "node_modules"}


@dataclasses.dataclass(frozen=True, slots=True)
class LoadProblem:
    file: str
    line: int
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class FoundStep:
    config: StepConfig
    file: str
    line: int
    function: str


def function_files(root: Path, suffixes: tuple[str, ...] = (".py",)) -> list[Path]:
    """The files under `root` that may hold step functions (hidden and `_`-prefixed skipped)."""
    found = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p.startswith((".", "_")) or p in SKIPPED_DIRECTORIES for p in parts):
            continue
        if path.is_file() and path.suffix in suffixes:
            found.append(path)
    return found


def module_name(root: Path, path: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    return ".".join((MODULE_PREFIX, *(part.replace("-", "_") for part in relative.parts)))


def load_module(root: Path, path: Path) -> ModuleType:
    """Import `path` afresh as `flowhost_functions.<relative.path>`; `root` is importable."""
    name = module_name(root, path)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def steps_of(module: ModuleType, path: Path) -> Iterator[FoundStep]:
    for attribute, value in vars(module).items():
        config = step_config(value)
        if config is None or getattr(value, "__module__", None) != module.__name__:
            continue
        code = getattr(value, "__code__", None)
        line = code.co_firstlineno if code is not None else 1
        yield FoundStep(config=config, file=str(path), line=line, function=attribute)


def problem_from(exc: BaseException, path: Path) -> LoadProblem:
    """Where in `path` loading failed: the syntax error's line or the deepest frame in it."""
    if isinstance(exc, SyntaxError) and exc.filename == str(path):
        return LoadProblem(str(path), exc.lineno or 1, f"SyntaxError: {exc.msg}")
    line = 1
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path) and frame.lineno is not None:
            line = frame.lineno
    return LoadProblem(str(path), line, f"{type(exc).__name__}: {exc}")
