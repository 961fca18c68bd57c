"""deploy/: the Grafana dashboard asks only for series /metrics has; compose wires it up."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
SERIES = re.compile(r"\bbrandlift_[a-z0-9_]+")
SUFFIX = re.compile(r"_(total|bucket|count|sum)$")


async def test_grafana_panels_query_series_the_service_exports(client: httpx.AsyncClient) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "brandlift.json").read_text())
    assert dashboard["uid"] == "brandlift" and dashboard["panels"]
    wanted = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in SERIES.findall(target["expr"])
    }
    text = (await client.get("/metrics")).text
    # Families are listed even before their first sample (a counter nobody hit yet).
    families = {f.name for f in text_string_to_metric_families(text)}
    missing = {name for name in wanted if SUFFIX.sub("", name) not in families}
    assert wanted and not missing, sorted(missing)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_compose_monitoring_profile_and_scrape_config() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
    assert "profiles" not in services["api"]  # the service itself starts without the profile
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = scrape["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["api:8000"]
    mounts = " ".join(services["grafana"]["volumes"] + services["prometheus"]["volumes"])
    for path in ("deploy/grafana/brandlift.json", "deploy/prometheus/prometheus.yml"):
        assert path in mounts and (ROOT / path).exists()
