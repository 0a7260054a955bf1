"""`flowhost bench [SCENARIO...]`: the benchmark harness of a flowhost checkout.

The harness (`bench/` at the repository's root) is not part of the installed package: it
measures flowhost side by side with anchors (PgQueuer, Procrastinate, croniter, ...) that are
development dependencies. So the command looks for a checkout: the one flowhost runs from (an
editable install, or PYTHONPATH=python), else the current directory or one of its parents,
else FLOWHOST_REPO; and runs `python -m bench` there in place of this process (same terminal,
same signals, its exit status).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

import click

import flowhost
from flowhost.cli.common import handle_errors, json_option
from flowhost.errors import ConfigurationError

# What marks a flowhost checkout: the harness, beside the package's sources.
MARKERS = ("bench/cli.py", "bench/harness.py", "python/flowhost/__init__.py")


def is_checkout(directory: Path) -> bool:
    return all((directory / marker).is_file() for marker in MARKERS)


def find_checkout(
    package_file: str | None = flowhost.__file__,
    cwd: Path | None = None,
    environ: dict[str, str] | None = None,
) -> Path:
    """The flowhost checkout whose harness to run (see the module's docstring)."""
    environ = dict(os.environ) if environ is None else environ
    candidates: list[Path] = []
    if package_file is not None:
        # <checkout>/python/flowhost/__init__.py
        candidates.append(Path(package_file).resolve().parents[2])
    here = (cwd or Path.cwd()).resolve()
    candidates += [here, *here.parents]
    named = environ.get("FLOWHOST_REPO")
    if named:
        candidates.append(Path(named).expanduser().resolve())
    for candidate in candidates:
        if is_checkout(candidate):
            return candidate
    raise ConfigurationError(
        "flowhost bench needs a flowhost source checkout: the benchmark harness (bench/) is "
        "not part of the installed package. Run it from a clone of the repository (after "
        "`make install`), or set FLOWHOST_REPO to one"
    )


def bench_command(checkout: Path, args: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of `python -m bench ARGS` in `checkout`: its `bench` package
    first on the path (-P: not a `bench` folder of the current directory); flowhost is
    imported as this process imports it (same interpreter, same PYTHONPATH)."""
    environ = dict(os.environ)
    path = [str(checkout)]
    if environ.get("PYTHONPATH"):
        path.append(environ["PYTHONPATH"])
    environ["PYTHONPATH"] = os.pathsep.join(path)
    return [sys.executable, "-P", "-m", "bench", *args], environ


@click.command("bench")
@click.argument("scenarios", nargs=-1, metavar="[SCENARIO]...")
@click.option("--repeat", type=click.IntRange(1), metavar="N", help="Repetitions (default 3).")
@click.option("--quick", is_flag=True, help="Small sizes, for a smoke test.")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
@click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where latest.json and the charts go (default bench/results of the checkout).",
)
@json_option("Print the rows of latest.json on stdout instead of the table.")
@handle_errors
def bench(
    scenarios: tuple[str, ...],
    repeat: int | None,
    quick: bool,
    list_only: bool,
    results_dir: Path | None,
    as_json: bool,
) -> None:
    """Run benchmark SCENARIOs (default: all) side by side with their anchors, and write
    bench/results/latest.json, a table and a chart per scenario (needs a source checkout:
    see docs/cli.md). Progress goes to stderr."""
    checkout = find_checkout()
    args = list(scenarios)
    if repeat is not None:
        args += ["--repeat", str(repeat)]
    if quick:
        args.append("--quick")
    if list_only:
        args.append("--list")
    if results_dir is not None:
        args += ["--results-dir", str(results_dir.resolve())]
    if as_json:
        args.append("--json")
    argv, environ = bench_command(checkout, args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, environ)
