"""Describe the step functions under a directory, as JSON on stdout.

Run by the host in a child process (`python -m flowhost_worker.describe DIR`), so that user code
is never imported into the host just to learn what it declares. The output is
`{"steps": [{"file", "line", "function", "config"}], "problems": [{"file", "line", "message"}]}`;
a file that fails to import is a problem with its file and line, and the others still load.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from flowhost_worker.loader import function_files, load_module, problem_from, steps_of


def describe(root: Path) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for path in function_files(root):
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
                }
            )
    return {"steps": steps, "problems": problems}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m flowhost_worker.describe FUNCTIONS_DIR", file=sys.stderr)
        return 2
    root = Path(argv[0]).resolve()
    if not root.is_dir():
        print(f"not a directory: {root}", file=sys.stderr)
        return 2
    json.dump(describe(root), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
