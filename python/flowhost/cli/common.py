"""What every `flowhost` command shares: the event loop, errors as exit codes, settings, the
`--json` flag, and groups known by two names."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from flowhost.cli import exit_codes
from flowhost.errors import FlowhostError
from flowhost.settings import Settings, load_settings

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGINT or SIGTERM (the long-running commands then finish what they do)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)


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


def json_option(help: str = "Print JSON (on stdout; errors stay on stderr).") -> Callable[[F], F]:
    """`--json`, the same flag on every command that prints data; the value is `as_json`."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def input_option(whose: str) -> Callable[[F], F]:
    """`-i/--input JSON|@FILE` (read with flowhost.cli.running.parse_input); the value is
    `input_text`."""
    return click.option(
        "-i",
        "--input",
        "input_text",
        metavar="JSON|@FILE",
        help=f"{whose} input: JSON text or @path to a JSON file (default {{}}).",
    )


def colour_choice(flag: bool | None, environ: Mapping[str, str] = os.environ) -> bool | None:
    """Colour on or off as asked (`--color`/`--no-color`), off when NO_COLOR is set to anything
    but the empty string (no-color.org), else None: on when stdout is a terminal."""
    if flag is not None:
        return flag
    if environ.get("NO_COLOR"):
        return False
    return None


class AliasedGroup(click.Group):
    """A group whose commands may have a second name (`schedule` and `schedules`): the same
    command object under both, listed once in the help, under its own name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases: dict[str, str] = {}

    def add_alias(self, alias: str, name: str) -> None:
        if name not in self.commands:
            raise ValueError(f"no command {name!r} to call {alias!r} too")
        self.aliases[alias] = name

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # The command's own name, whichever was typed (usage lines and errors say it).
        _, command, rest = super().resolve_command(ctx, args)
        return (None if command is None else command.name), command, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        also: dict[str, list[str]] = {}
        for alias, name in sorted(self.aliases.items()):
            also.setdefault(name, []).append(alias)
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            names = ", ".join([name, *also.get(name, [])])
            rows.append((names, command.get_short_help_str(formatter.width - len(names) - 6)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
