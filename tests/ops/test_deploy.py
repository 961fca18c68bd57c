"""deploy/: the Grafana dashboard asks only for series the service exports; compose wires it
up with commands and settings the service knows (no Docker engine here: read, not run)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families
from typer.main import get_command

from app.cli import cli
from app.config import Settings
from app.metrics import REBUILDS, serve_worker_metrics
from tests.dashboard.server import free_port

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
    REBUILDS.labels("live").inc(0)  # the worker's counters come from its own endpoint
    families |= set(await worker_families())
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
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert jobs["brandlift"]["metrics_path"] == "/metrics"
    assert jobs["brandlift"]["static_configs"][0]["targets"] == ["api:8000"]
    # The worker's counters: the port its command serves them on.
    assert jobs["brandlift-worker"]["static_configs"][0]["targets"] == ["worker:9100"]
    worker = services["worker"]["command"]
    assert worker[worker.index("--metrics-port") + 1] == "9100"
    assert "9100" in services["worker"]["expose"]
    mounts = " ".join(services["grafana"]["volumes"] + services["prometheus"]["volumes"])
    for path in ("deploy/grafana/brandlift.json", "deploy/prometheus/prometheus.yml"):
        assert path in mounts and (ROOT / path).exists()


async def worker_families() -> list[str]:
    port = free_port()
    server = serve_worker_metrics(port, addr="127.0.0.1")
    try:
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        server.shutdown()
        server.server_close()
    return [f.name for f in text_string_to_metric_families(text)]


async def test_worker_serves_its_counters_not_the_scrape_time_gauges() -> None:
    REBUILDS.labels("failed").inc(0)
    families = await worker_families()
    assert "brandlift_rebuilds" in families and "brandlift_realtime_updates" in families
    # Never set in a worker: they would shadow the API's figures in max() panels.
    assert "brandlift_model_age_seconds" not in families
    assert "brandlift_realtime_lag_seconds" not in families


def test_compose_commands_and_settings_are_the_services_own() -> None:
    """Every brandlift service runs a real subcommand with options it accepts, and every
    environment variable it sets is a Settings field (a typo would be silently ignored)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    group = get_command(cli)
    fields = {name.upper() for name in Settings.model_fields}
    seen = set()
    for name, service in compose["services"].items():
        command = service.get("command")
        if not command or command[0] != "brandlift":
            continue
        seen.add(name)
        sub = group.get_command(None, command[1])  # type: ignore[attr-defined]
        assert sub is not None, (name, command)
        sub.make_context(command[1], list(command[2:]))  # raises on an unknown option
        unknown = set(service["environment"]) - fields
        assert not unknown, (name, unknown)
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://")
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert seen == {"migrate", "api", "worker"}
    postgres = compose["services"]["postgres"]["environment"]
    url = compose["services"]["api"]["environment"]["DATABASE_URL"]
    user, password = postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"]
    assert url == f"postgresql://{user}:{password}@postgres:5432/{postgres['POSTGRES_DB']}"
    # Defaults interpolated by compose must parse as the settings' types.
    env = compose["x-brandlift"]["environment"]
    for key in ("RATE_LIMIT_REQUESTS", "RATE_LIMIT_WINDOW_SECONDS", "REBUILD_INTERVAL_SECONDS"):
        default = env[key].split(":-", 1)[1].rstrip("}")
        float(default)
