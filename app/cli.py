"""The `brandlift` command line: migrate, serve, worker, demo, import, evaluate."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
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
    metrics_port: Annotated[
        int | None,
        typer.Option(help="serve the worker's counters for Prometheus here (WORKER_METRICS_PORT)"),
    ] = None,
) -> None:
    """Run the background worker: scheduled and on-demand rebuilds plus real-time updates."""
    from app.worker import main as worker_main

    if metrics_port is not None:
        os.environ["WORKER_METRICS_PORT"] = str(metrics_port)
        get_settings.cache_clear()
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


@cli.command("import")
def import_(
    kind: Annotated[str, typer.Argument(help="events, items, users or campaigns")],
    file: Annotated[Path, typer.Argument(help="CSV, JSON lines or Parquet file (.gz works)")],
    fmt: Annotated[
        str,
        typer.Option("--format", help="auto (by suffix), csv, jsonl, parquet, or retailrocket"),
    ] = "auto",
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="SOURCE=FIELD column mapping, e.g. visitorid=user_id"),
    ] = None,
    event_types: Annotated[
        list[str] | None,
        typer.Option(
            "--event-type", help="SOURCE=TYPE event type mapping, e.g. addtocart=add_to_cart"
        ),
    ] = None,
    timestamp_unit: Annotated[
        str, typer.Option(help="numeric timestamps: auto, s, ms; or iso")
    ] = "auto",
    assume_utc: Annotated[
        bool, typer.Option(help="read timestamps without an offset as UTC (else rejected)")
    ] = False,
    delimiter: Annotated[str | None, typer.Option(help="CSV delimiter (default , or tab)")] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="rejects file (default ./FILE.rejects.jsonl)")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="rows per write")] = None,
    dry_run: Annotated[bool, typer.Option(help="validate only; store nothing")] = False,
) -> None:
    """Bulk-load a file through the API's validation; bad rows go to a rejects file."""
    from app.importer.command import import_file

    import_file(
        kind,
        file,
        fmt=fmt,
        mapping=mapping or [],
        event_types=event_types or [],
        timestamp_unit=timestamp_unit,
        assume_utc=assume_utc,
        delimiter=delimiter,
        rejects=rejects,
        batch_size=batch_size,
        dry_run=dry_run,
    )


@cli.command()
def evaluate(
    out: Annotated[Path, typer.Option("--out", help="HTML report to write")] = Path("report.html"),
) -> None:
    """Evaluate every model family on a temporal holdout and write an HTML report."""
    from app.evaluation.command import run

    run(out)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
