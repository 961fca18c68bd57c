"""The `brandlift` command line: migrate, serve, worker, demo."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Annotated

import typer
import uvicorn

from app.config import get_settings

cli = typer.Typer(help="brandlift: recommendations and ad targeting service", no_args_is_help=True)


@cli.command()
def migrate(revision: str = "head") -> None:
    """Apply database migrations (alembic upgrade)."""
    from app.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database migrated to {revision}")


@cli.command()
def serve(
    port: Annotated[int | None, typer.Option(help="listen port (default: PORT)")] = None,
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes")] = None,
) -> None:
    """Run the HTTP API with uvicorn."""
    settings = get_settings()
    processes = workers or settings.web_concurrency
    if processes > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker process writes its metrics here; /metrics aggregates them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="brandlift-metrics-")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=processes,
        access_log=False,
        log_level=settings.log_level.lower(),
    )


@cli.command()
def worker(
    once: Annotated[bool, typer.Option(help="run one rebuild and exit")] = False,
    realtime: Annotated[
        bool,
        typer.Option(
            "--realtime/--no-realtime",
            help="also run the real-time loop (it needs the model this worker builds)",
        ),
    ] = True,
) -> None:
    """Run the background worker: scheduled and on-demand rebuilds plus real-time updates."""
    from app.worker import main as worker_main

    asyncio.run(worker_main(once=once, realtime=realtime))


@cli.command()
def demo(
    users: Annotated[int, typer.Option(help="shoppers to generate")] = 2000,
    items: Annotated[int, typer.Option(help="catalog size")] = 800,
    days: Annotated[int, typer.Option(help="days of history")] = 60,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="load data only")] = False,
) -> None:
    """Migrate, load a generated demo shop (once) and serve it with the worker in-process."""
    from app.demo import load_demo
    from app.migrate import upgrade

    os.environ.setdefault("LOG_JSON", "false")  # a newcomer reads these logs in a terminal
    get_settings.cache_clear()
    settings = get_settings()
    upgrade(settings.database_url)
    loaded = asyncio.run(load_demo(settings, users=users, items=items, days=days))
    typer.echo(loaded)
    if no_serve:
        return
    os.environ["RUN_WORKER_IN_PROCESS"] = "true"
    get_settings.cache_clear()
    serve(port=port, host=None, workers=1)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
