"""`brandlift evaluate`: evaluate every model family on the current data, render, store."""

from __future__ import annotations

import asyncio
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import delete, select

from app import __version__
from app.config import Settings
from app.context import AppContext
from app.evaluation import predictive, svg
from app.evaluation.recommenders import K, evaluate_recommenders, families
from app.models import EvaluationReport
from app.training.dataset import load_catalog, refresh_log

KEEP_REPORTS = 20
LOAD_STEPS = 2
Step = Callable[[str], None]
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class Report:
    summary: dict[str, Any]
    html: str


def total_steps(n_items: int | None = None) -> int:
    """Progress steps of one evaluation (loading, each recommender, predictive, render)."""
    return LOAD_STEPS + len(families(n_items or 0)) + len(predictive.SECTIONS) + 1


def _stamp(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _figures(rec: dict[str, Any], pred: dict[str, Any]) -> dict[str, Markup]:
    figs: dict[str, Markup] = {}
    models = rec["models"]
    if models:
        labels = [m["kind"] for m in models]
        figs["ranking"] = Markup(
            svg.bar_chart(
                f"Ranking metrics at {K} per model (temporal holdout)",
                labels,
                [
                    (f"{name}@{K}", [m["metrics"][f"{name}@{K}"] for m in models])
                    for name in ("recall", "ndcg", "map")
                ],
                "metric value",
            )
        )
        figs["recall_curve"] = Markup(
            svg.line_chart(
                "Recall@k by model",
                [
                    (m["kind"], list(range(1, len(m["recall_curve"]) + 1)), m["recall_curve"])
                    for m in models
                ],
                "k (list length)",
                "recall@k",
                markers=True,
            )
        )
        figs["coverage"] = Markup(
            svg.bar_chart(
                f"Catalog coverage of top-{K} lists",
                labels,
                [("coverage", [m["metrics"]["coverage"] for m in models])],
                "share of catalog recommended",
            )
        )
    for name, section in pred.items():
        curves = section.get("curves") or {}
        if curves.get("roc"):
            figs[f"{name}_roc"] = Markup(
                svg.line_chart(
                    f"ROC curve: {section['title']}",
                    curves["roc"],
                    "false positive rate",
                    "true positive rate",
                    square=1.0,
                    diagonal=True,
                )
            )
        if curves.get("calibration"):
            figs[f"{name}_calibration"] = Markup(
                svg.line_chart(
                    f"Calibration: {section['title']}",
                    curves["calibration"],
                    "mean predicted probability",
                    "observed frequency",
                    square=_calibration_range(curves["calibration"]),
                    diagonal=True,
                    markers=True,
                )
            )
        if curves.get("scatter"):
            actual, predicted = curves["scatter"]
            figs[f"{name}_scatter"] = Markup(
                svg.scatter(
                    f"Predicted vs actual: {section['title']}",
                    actual,
                    predicted,
                    "actual",
                    "predicted",
                )
            )
    return figs


def _calibration_range(curves: list[tuple[str, list[float], list[float]]]) -> float:
    """Both axes up to just above the largest probability shown (small CTRs stay readable)."""
    top = max((v for _, xs, ys in curves for v in (*xs, *ys)), default=1.0)
    return min(1.0, max(0.02, math.ceil(top * 1.1 * 50) / 50))


def render(summary: dict[str, Any]) -> str:
    """The self-contained HTML page (inline CSS and SVG, no script, no external resource)."""
    figures = _figures(summary["recommenders"], summary["predictive"])
    return _templates.get_template("report.html").render(s=summary, figs=figures, K=K, stamp=_stamp)


async def build_report(ctx: AppContext, step: Step | None = None) -> Report:
    """Load the current data, evaluate every family, render the page."""
    started = time.perf_counter()
    settings: Settings = ctx.settings
    tick = step or (lambda _msg: None)
    tick("loading catalog")
    catalog = await load_catalog(ctx.engine)
    tick("loading events")
    inter = (await refresh_log(ctx.engine)).interactions(catalog)
    rec = await asyncio.to_thread(evaluate_recommenders, catalog, inter, settings, tick)
    pred = await predictive.evaluate_all(ctx, catalog, inter, tick)
    tick("rendering report")
    summary = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "version": __version__,
        "python": platform.python_version(),
        "database": ctx.engine.dialect.name,
        "recommenders": rec,
        "predictive": pred,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return Report(summary=summary, html=render(summary))


async def store(ctx: AppContext, report: Report) -> int:
    """Keep the report in the database (the dashboard serves the newest); prune old ones."""
    async with ctx.sessions() as session:
        row = EvaluationReport(summary=_jsonable(report.summary), html=report.html)
        session.add(row)
        await session.flush()
        keep = select(EvaluationReport.id).order_by(EvaluationReport.id.desc()).limit(KEEP_REPORTS)
        await session.execute(
            delete(EvaluationReport).where(EvaluationReport.id.not_in(keep.scalar_subquery()))
        )
        await session.commit()
        return int(row.id)


async def latest(ctx: AppContext) -> EvaluationReport | None:
    async with ctx.sessions() as session:
        return await session.scalar(
            select(EvaluationReport).order_by(EvaluationReport.id.desc()).limit(1)
        )


def _jsonable(value: Any) -> Any:
    """The summary without plot data (curves stay in the HTML)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k not in ("curves", "recall_curve")}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value
