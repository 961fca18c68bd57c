"""`brandlift evaluate` on a generated shop, and the report at /dashboard/evaluation."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, get_settings
from app.demo import load_demo
from app.evaluation.report import build_report, store
from app.main import create_app
from app.migrate import upgrade
from tests.conftest import ADMIN, API_KEYS, INGEST, READ

runner = CliRunner()
FAMILIES = ("Popularity (baseline)", "Item-kNN (BM25)", "ALS (implicit)", "BPR (implicit)")


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _rows(html: str) -> dict[str, list[float]]:
    """Model name -> the numeric cells of its row in the recommender table."""
    out = {}
    for label in FAMILIES:
        match = re.search(rf"<td>{re.escape(label)}</td>(.*?)</tr>", html, re.S)
        assert match, label
        cells = re.findall(r"<td>([0-9.]+)x?</td>", match.group(1))
        out[label] = [float(c) for c in cells]
    return out


def test_evaluate_writes_a_self_contained_report(tmp_path: Path, fresh_settings: None) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    upgrade(url)
    settings = Settings(database_url=url, brandlift_api_keys=API_KEYS, log_json=False)
    # 75 days: enough history for the 30-day spend horizon, so every section is available.
    asyncio.run(load_demo(settings, users=300, items=120, days=75, seed=5))
    out = tmp_path / "reports" / "report.html"
    env = {"DATABASE_URL": url, "OPENBLAS_NUM_THREADS": "1", "LOG_LEVEL": "WARNING"}
    result = runner.invoke(cli, ["evaluate", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert "report written" in result.output
    # The rich progress bar ends on its last step: "done ━━━ 11/11 0:00:01".
    assert re.search(r"done\s+━+ (\d+)/\1 ", result.output), result.output
    html = out.read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert html.count("<svg") >= 8  # ranking, recall@k, coverage, 2 ROC, 2 calibration, spend
    rows = _rows(html)
    ndcg = {label: values[1] for label, values in rows.items()}
    assert all(0.0 <= v <= 1.0 for v in ndcg.values())
    assert max(ndcg.values()) > ndcg["Popularity (baseline)"]  # CF beats the baseline here
    for section in ("Spend regression", "Churn classifier", "Ad click propensity"):
        assert section in html
    assert "Not available" not in html
    # The plots the issue names: metric per model, coverage, ROC curves, calibration.
    for title in (
        "Ranking metrics at 10 per model",
        "Catalog coverage of top-10 lists",
        "Recall@k by model",
        "ROC curve: Churn classifier",
        "ROC curve: Ad click propensity",
        "Calibration: Churn classifier",
        "Calibration: Ad click propensity",
        "Predicted vs actual: Spend regression",
    ):
        assert f"<title>{title}" in html or f'aria-label="{title}' in html, title
    for metric in ("roc auc", "brier", "log loss", "mse", "mae"):
        assert metric in html.lower(), metric
    assert "Best by NDCG@10" in html

    async def served() -> tuple[int, int, int, str, str]:
        app: FastAPI = create_app(settings)
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                url_path = "/dashboard/evaluation"
                anonymous = (await http.get(url_path)).status_code
                read = (await http.get(url_path, headers=READ)).status_code
                ingest = (await http.get(url_path, headers=INGEST)).status_code
                by_header = await http.get(url_path, headers=ADMIN)
                http.cookies.set("key", ADMIN["X-API-Key"])
                by_cookie = await http.get(url_path)
        assert by_header.status_code == by_cookie.status_code == 200
        return anonymous, read, ingest, by_header.text, by_header.headers["content-type"]

    anonymous, read, ingest, page, content_type = asyncio.run(served())
    assert (anonymous, read, ingest) == (401, 403, 403)
    assert page == html and content_type.startswith("text/html")


def test_evaluate_on_an_empty_database_says_why(tmp_path: Path, fresh_settings: None) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    out = tmp_path / "empty.html"
    result = runner.invoke(cli, ["evaluate", "--out", str(out)], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "not enough data" in html
    assert html.count("Not available") == 3


async def test_dashboard_serves_the_newest_report(client: httpx.AsyncClient, app: FastAPI) -> None:
    report = await build_report(app.state.ctx)
    report.html = report.html.replace("</h1>", " (test marker)</h1>")
    await store(app.state.ctx, report)
    resp = await client.get("/dashboard/evaluation", headers=ADMIN)
    assert resp.status_code == 200
    assert "(test marker)" in resp.text
    assert "script-src" not in resp.headers["content-security-policy"]
    assert (await client.get("/dashboard/evaluation", headers=READ)).status_code == 403
