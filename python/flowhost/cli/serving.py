"""The long-running commands: `flowhost dev` and `flowhost host` (a host, with HTTP beside it)
and `flowhost serve` (HTTP alone: webhooks, health probes, the admin API and the dashboard, no
steps run)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import click

from flowhost import __version__
from flowhost.api.app import create_app
from flowhost.api.server import HttpServer, bind_first_free
from flowhost.cli.common import stop_on_signals
from flowhost.cli.serve_workers import signal_ready, stop_when_orphaned, supervise_workers
from flowhost.engine.host import Host
from flowhost.project import Project, open_project
from flowhost.settings import (
    DEFAULT_HTTP_HOST,
    DEFAULT_HTTP_PORT,
    Settings,
    check_api_token,
    parse_http_address,
)

# Where `flowhost dev` keeps the admin token it made (in the project's state folder), so that
# it stays the same from one start to the next.
DEV_TOKEN_FILE = "api-token"


def print_problems(project: Project) -> None:
    for problem in project.catalog.problems:
        click.echo(click.style("problem: ", fg="red") + str(problem), err=True)


def print_flows(project: Project) -> None:
    for flow in project.catalog.flows.values():
        steps = ", ".join(sorted(flow.steps))
        click.echo(f"  flow {flow.name}: entry {flow.entry}; steps {steps}")


def print_start(settings: Settings) -> None:
    click.echo(f"flowhost {__version__}: project {settings.project_dir}")
    click.echo(
        "database: "
        + (
            "embedded PostgreSQL in " + str(settings.state_dir / "pg")
            if settings.embedded
            else "from settings"
        )
    )


def print_api(url: str, settings: Settings, *, generated_token: bool) -> None:
    """Where the API and the dashboard are; the token only when `flowhost dev` made it (a
    configured one is the operator's, and never printed): then the dashboard's URL carries it,
    and opening it logs the browser in (a cookie; the token leaves the address bar)."""
    click.echo(f"api ready: {url}/api (docs {url}/api/docs)")
    if settings.api_token is None:
        click.echo(
            "note: the admin API and the dashboard are off: set api_token (FLOWHOST_API_TOKEN) "
            "to use them",
            err=True,
        )
    elif generated_token:
        click.echo(f"api token: {settings.api_token}")
        click.echo(f"dashboard: {url}/?token={settings.api_token}")
    else:
        click.echo("api token: the api_token setting")
        click.echo(f"dashboard: {url}/ (log in with the admin token)")


def dev_token(state_dir: Path) -> str:
    """The admin token `flowhost dev` uses when none is set: made once per project and kept in
    its state folder, readable by its owner only."""
    path = state_dir / DEV_TOKEN_FILE
    try:
        token = path.read_text(encoding="ascii").strip()
        check_api_token(token)
        return token
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    token = secrets.token_urlsafe(32)
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(token + "\n")
    temporary.replace(path)
    return token


def dev_http(settings: Settings, port: int | None) -> HttpServer:
    """Where `flowhost dev` serves HTTP: `--port`, else the `http` setting (`--http`), else
    DEFAULT_HTTP_PORT on localhost or the next free port."""
    if port is not None:
        return HttpServer(DEFAULT_HTTP_HOST, port)
    if settings.http is not None:
        return HttpServer(*parse_http_address(settings.http))
    return bind_first_free(DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT)


async def run_dev(settings: Settings, *, port: int | None, with_brokers: bool = False) -> None:
    """`flowhost dev`: a host that reloads functions, with HTTP and the admin API; with
    `with_brokers`, private brokers for the project's connectors."""
    generated = settings.api_token is None
    if generated:
        settings = dataclasses.replace(settings, api_token=dev_token(settings.state_dir))
    http = dev_http(settings, port)
    if not with_brokers:
        await serve_until_stopped(settings, watch=True, http=http, generated_token=generated)
        return
    from flowhost.connectors.dev_brokers import local_brokers_for

    async with local_brokers_for(settings, say=click.echo) as pointed:
        await serve_until_stopped(pointed, watch=True, http=http, generated_token=generated)


async def serve_until_stopped(
    settings: Settings,
    *,
    watch: bool,
    http: HttpServer | None = None,
    generated_token: bool = False,
) -> None:
    """A host until SIGINT/SIGTERM; with `http` (or the `http` setting), HTTP beside it."""
    if http is None and settings.http is not None:
        http = HttpServer(*parse_http_address(settings.http))
    async with open_project(settings) as project:
        print_start(settings)
        print_flows(project)
        print_problems(project)

        def ready(current: Project) -> None:
            if serving.http_url is not None:
                click.echo(f"http ready: {serving.http_url} (public URL {serving.public_url})")
                print_api(serving.http_url, settings, generated_token=generated_token)
            served = len(current.catalog.flows)
            click.echo(f"host ready: serving {served} flow{'s' if served != 1 else ''}")
            if watch:
                click.echo(f"watching {settings.functions_path} for changes; Ctrl-C stops")

        def reloaded(current: Project) -> None:
            click.echo("functions reloaded:")
            print_flows(current)
            print_problems(current)

        stop = asyncio.Event()
        stop_on_signals(stop)
        serving = Host(project, watch=watch, on_ready=ready, on_reload=reloaded, http=http)
        await serving.serve(stop)
        click.echo("stopped")


async def serve_http(
    settings: Settings, *, host: str | None, port: int | None, workers: int = 1, verbose: int = 0
) -> None:
    """`flowhost serve`: HTTP alone against the project's database, until SIGINT/SIGTERM, in
    this process or in `workers` processes on one socket. Requests in progress finish first."""
    default_host, default_port = (
        parse_http_address(settings.http)
        if settings.http is not None
        else (DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT)
    )
    # Bound before the database opens: a taken port fails at once. With workers, this socket
    # only holds the port; each worker listens on a socket of its own on it.
    server = HttpServer(
        host or default_host,
        default_port if port is None else port,
        shared=workers > 1,
        listen=workers == 1,
    )
    public_url = settings.public_url or server.url

    def ready(detail: str = "") -> None:
        click.echo(f"http ready: {server.url} (public URL {public_url}){detail}")
        print_api(server.url, settings, generated_token=False)

    try:
        async with open_project(settings) as project:
            print_start(settings)
            print_problems(project)
            if workers == 1:
                await _serve(project, server, public_url, on_ready=ready)
        if workers > 1:  # the project checked above, each worker opens its own
            await supervise_workers(
                settings,
                server,
                workers=workers,
                verbose=verbose,
                on_ready=lambda: ready(f", {workers} worker processes"),
            )
        click.echo("stopped")
    finally:
        server.close()


async def serve_worker(
    settings: Settings, host: str, port: int, *, ready_fd: int, alive_fd: int
) -> None:
    """One worker process of `flowhost serve --workers N` (started by it, never by hand)."""
    async with open_project(settings) as project:
        # Listening only once it can answer: the kernel queues connections on every socket
        # of the port that listens.
        server = HttpServer(host, port, shared=True)
        public_url = settings.public_url or server.url
        await _serve(
            project,
            server,
            public_url,
            on_ready=lambda: signal_ready(ready_fd),
            orphaned_by=alive_fd,
        )


async def _serve(
    project: Project,
    server: HttpServer,
    public_url: str,
    *,
    on_ready: Callable[[], None],
    orphaned_by: int | None = None,
) -> None:
    app = create_app(project, public_url=public_url)
    stop = asyncio.Event()
    stop_on_signals(stop)
    if orphaned_by is not None:
        stop_when_orphaned(orphaned_by, stop)
    on_ready()
    await server.serve(app, stop)
