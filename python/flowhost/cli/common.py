"""What every `flowhost` command shares: the event loop, errors as exit codes, settings."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from flowhost.cli import exit_codes
from flowhost.errors import FlowhostError
from flowhost.settings import Settings, load_settings

P = ParamSpec("P")
T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def handle_errors(command: Callable[P, T]) -> Callable[P, T]:
    """One-line errors and documented exit codes instead of tracebacks."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except FlowhostError as exc:
            click.echo(f"flowhost: error: {exc.message}", err=True)
            sys.exit(exit_codes.exit_code_for(exc))
        except KeyboardInterrupt:
            click.echo("flowhost: interrupted", err=True)
            sys.exit(exit_codes.INTERRUPTED)

    return wrapper


def settings_of(ctx: click.Context, project_dir: Path | None = None) -> Settings:
    return load_settings(project_dir or ctx.obj["project"])
