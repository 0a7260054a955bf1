"""Describe the step functions under a directory, as JSON on stdout.

Run by the host in a child process (`python -m flowhost_worker.describe DIR [--only SUBDIR]
[--exclude SUBDIR ...]`), so that user code is never imported into the host just to learn what it
declares. `--only` and `--exclude` pick the files one interpreter describes when parts of the
functions directory run in their own virtual environments; module names stay relative to DIR.
The output is
`{"steps": [{"file", "line", "function", "config", "hooks"}], "problems": [{"file", "line",
"message"}]}`, where `hooks` maps each hook name the step's awaits use to whether the file has
an async function of that name (the host reports the ones it lacks); a file that fails to
import is a problem with its file and line, and the others still load.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from flowhost_worker.config import StepConfig
from flowhost_worker.loader import function_files, load_module, problem_from, steps_of


def describe(
    root: Path, *, only: Path | None = None, exclude: Sequence[Path] = ()
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for path in function_files(root):
        if only is not None and not path.is_relative_to(only):
            continue
        if any(path.is_relative_to(skipped) for skipped in exclude):
            continue
        try:
            # A function file that prints at import must not corrupt the JSON on stdout.
            with contextlib.redirect_stdout(sys.stderr):
                module = load_module(root, path)
        except Exception as exc:
            problem = problem_from(exc, path)
            problems.append(
                {"file": problem.file, "line": problem.line, "message": problem.message}
            )
            continue
        for found in steps_of(module, path):
            steps.append(
                {
                    "file": found.file,
                    "line": found.line,
                    "function": found.function,
                    "config": found.config.to_dict(),
                    "hooks": hooks_found(module, found.config),
                }
            )
    return {"steps": steps, "problems": problems}


def hooks_found(module: ModuleType, config: StepConfig) -> dict[str, bool]:
    """Each hook name of the step's awaits -> whether `module` has an async function by it."""
    found: dict[str, bool] = {}
    for declared in (config.await_before, config.await_after):
        for name in declared.hooks.values() if declared is not None else ():
            if name is not None:
                found[name] = inspect.iscoroutinefunction(getattr(module, name, None))
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowhost_worker.describe")
    parser.add_argument("functions_dir", type=Path)
    parser.add_argument("--only", type=Path, help="describe only the files under this directory")
    parser.add_argument(
        "--exclude", type=Path, action="append", default=[], help="skip files under this directory"
    )
    args = parser.parse_args(argv)
    root = args.functions_dir.resolve()
    if not root.is_dir():
        print(f"not a directory: {root}", file=sys.stderr)
        return 2
    only = args.only.resolve() if args.only is not None else None
    exclude = [path.resolve() for path in args.exclude]
    json.dump(describe(root, only=only, exclude=exclude), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
