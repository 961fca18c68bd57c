"""`brandlift evaluate`: run the offline evaluation with a progress bar, write and keep it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.config import get_settings
from app.context import AppContext
from app.evaluation.report import build_report, store, total_steps
from app.models import Item


async def _count_items(ctx: AppContext) -> int:
    from sqlalchemy import func, select

    async with ctx.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Item)) or 0)


async def evaluate(console: Console) -> tuple[int, str, dict[str, object]]:
    """Evaluate and store the report for /dashboard/evaluation; (id, html, summary)."""
    ctx = AppContext.create(get_settings(), cache_timeout=10.0)
    try:
        progress = Progress(
            TextColumn("{task.description:<44}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        with progress:
            task = progress.add_task("starting", total=total_steps(await _count_items(ctx)))

            def step(message: str) -> None:
                progress.update(task, advance=1, description=message)

            report = await build_report(ctx, step)
            progress.update(task, completed=progress.tasks[0].total, description="done")
        report_id = await store(ctx, report)
        return report_id, report.html, report.summary
    finally:
        await ctx.close()


def run(out: Path) -> None:
    console = Console(stderr=True)
    started = time.perf_counter()
    report_id, html, summary = asyncio.run(evaluate(console))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    rec = summary["recommenders"]
    best = rec.get("best") if isinstance(rec, dict) else None
    console.print(
        f"report written to {out} (report {report_id}, served at /dashboard/evaluation) "
        f"in {time.perf_counter() - started:.1f} s"
        + (f"; best recommender: {best}" if best else "")
    )
