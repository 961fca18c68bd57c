"""Run one import: read, map, validate, store in batches, reject what cannot be stored.

Writes go through COPY on Postgres: events with the API's own COPY path (store_events),
catalog rows through a staging table (app/importer/copy.py); SQLite uses the API's statements.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import text

from app.catalog.service import upsert
from app.config import Settings
from app.context import AppContext
from app.events.service import store_events
from app.importer.copy import copy_upsert
from app.importer.mapping import MODELS, Options, Rejected, normalise
from app.importer.readers import Source
from app.models import Campaign, Item, User
from app.problems import field_name
from app.recommendations.availability import apply_availability, note_items

TABLES: dict[str, tuple[Any, str]] = {
    "items": (Item, "item_id"),
    "users": (User, "user_id"),
    "campaigns": (Campaign, "campaign_id"),
}
# The API's own batch sizes: the same statements, the same memory per round trip.
BATCH = {"events": 5000, "items": 1000, "users": 1000, "campaigns": 1000}


@dataclass
class ImportReport:
    kind: str
    rows: int = 0
    stored: int = 0  # events newly stored, or catalog rows created or updated
    duplicates: int = 0  # events already stored (re-runs, repeated rows)
    rejected: int = 0
    rejects_path: Path | None = None
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        text = (
            f"{self.kind}: {self.rows:,} rows read, {self.stored:,} stored, "
            f"{self.duplicates:,} already present, {self.rejected:,} rejected "
            f"in {self.seconds:.1f} s ({self.rate:,.0f} rows/s)"
        )
        if self.rejected and self.rejects_path is not None:
            text += f"; rejected rows and reasons in {self.rejects_path}"
        return text


class Rejects:
    """The rejects file: one JSON line per refused record, written only when needed."""

    def __init__(self, path: Path):
        self.path = path
        self._out: IO[bytes] | None = None
        path.unlink(missing_ok=True)  # each run rewrites it: old rejects would mislead

    def add(self, number: int, reason: str, row: dict[str, Any] | None) -> None:
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.path.open("wb")
        line = {"record": number, "reason": reason, "row": row}
        self._out.write(orjson.dumps(line, default=str) + b"\n")

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


def _reason(exc: ValidationError | Rejected, sources: dict[str, str]) -> str:
    """The validation messages, naming the file's column when a mapping renamed it."""
    if isinstance(exc, Rejected):
        return str(exc)
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        name = field_name(err["loc"])
        column = sources.get(name)
        parts.append(f"{name}{f' (column {column})' if column else ''}: {err['msg']}")
    return "; ".join(parts)


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TextColumn("{task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
    )


async def _store(ctx: AppContext, kind: str, batch: list[BaseModel]) -> tuple[int, int]:
    """Write one validated batch; returns (stored, already present)."""
    async with ctx.sessions() as session:
        if kind == "events":
            stored, _ = await store_events(session, batch)  # type: ignore[arg-type]
            return stored, len(batch) - stored
        model, key = TABLES[kind]
        if session.get_bind().dialect.name == "postgresql":
            upserted = await copy_upsert(session, model, key, batch)
        else:
            upserted = await upsert(session, model, key, batch)
    if kind == "items":
        # As with POST /v1/items: sold-out items leave every served list at once, and new
        # items get content neighbours from the real-time loop.
        changes = {r.item_id: r.available for r in batch if r.available is not None}  # type: ignore[attr-defined]
        await apply_availability(ctx, changes)
        await note_items(ctx, [r.item_id for r in batch])  # type: ignore[attr-defined]
    return upserted, 0


class _Parser:
    """Reads, maps and validates records batch by batch (in a thread, beside the writes)."""

    def __init__(self, source: Source, opts: Options, report: ImportReport, rejects: Rejects):
        self.records = source.records
        self.opts = opts
        self.model = MODELS[opts.kind]
        self.report = report
        self.rejects = rejects
        self.sources = {target: column for column, target in opts.mapping.items()}

    def next_batch(self, size: int) -> tuple[list[BaseModel], bool]:
        """Up to `size` valid rows, and whether the file is exhausted."""
        batch: list[BaseModel] = []
        report, model, opts = self.report, self.model, self.opts
        for number, row, error in self.records:
            report.rows += 1
            try:
                if error is not None or row is None:
                    raise Rejected(error or "unreadable record")
                batch.append(model.model_validate(normalise(row, opts)))
            except (Rejected, ValidationError) as exc:
                reason = _reason(exc, self.sources)
                report.rejected += 1
                key = reason.split(":", 1)[0]
                report.reasons[key] = report.reasons.get(key, 0) + 1
                self.rejects.add(number, reason, row)
            if len(batch) >= size:
                return batch, False
        return batch, True


async def _analyze(ctx: AppContext) -> None:
    """Fresh planner statistics after a bulk load: until autovacuum gets to it, Postgres plans
    per-user look-ups (the real-time loop's) as scans of the whole events table."""
    async with ctx.engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()


async def run_import(
    settings: Settings,
    source: Source,
    opts: Options,
    rejects_path: Path,
    *,
    batch_size: int | None = None,
    dry_run: bool = False,
    console: Console | None = None,
) -> ImportReport:
    """Import every record of `source` as `opts.kind`; bad records go to `rejects_path`.

    Parsing runs in a thread while the previous batch is written, so the database's share of
    the work overlaps with ours.
    """
    size = batch_size or BATCH[opts.kind]
    report = ImportReport(opts.kind, rejects_path=rejects_path)
    rejects = Rejects(rejects_path)
    parser = _Parser(source, opts, report, rejects)
    ctx = AppContext.create(settings)
    started = time.perf_counter()

    async def write(batch: list[BaseModel]) -> None:
        stored, present = await _store(ctx, opts.kind, batch)
        report.stored += stored
        report.duplicates += present

    writing: asyncio.Task[None] | None = None
    try:
        with _progress(console) as progress:
            task = progress.add_task(f"importing {opts.kind}", total=source.total, rows=0, rate=0)
            done = False
            while not done:
                batch, done = await asyncio.to_thread(parser.next_batch, size)
                if writing is not None:
                    await writing
                    writing = None
                if batch and not dry_run:
                    writing = asyncio.create_task(write(batch))
                elapsed = time.perf_counter() - started
                progress.update(
                    task, completed=source.position(), rows=report.rows, rate=report.rows / elapsed
                )
            if writing is not None:
                await writing
                writing = None
            if report.stored and not dry_run:
                await _analyze(ctx)
            report.seconds = time.perf_counter() - started
            progress.update(task, completed=source.total, rows=report.rows, rate=report.rate)
    finally:
        if writing is not None:
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing
        rejects.close()
        source.close()
        await ctx.close()
    return report
