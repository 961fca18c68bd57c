"""Service settings: one pydantic-settings object, read from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path("var") / "brandlift.db"


class Settings(BaseSettings):
    """Everything configurable about brandlift; env var names are the upper-cased field names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    redis_url: str | None = None
    redis_timeout_seconds: float = 0.25
    brandlift_api_keys: str = ""
    port: int = 8000
    host: str = "0.0.0.0"
    web_concurrency: int = 1

    # Ingest limits (HTTP contract v1).
    max_body_bytes: int = 8 * 1024 * 1024
    max_events_per_batch: int = 5000
    max_catalog_batch: int = 1000

    # Worker / training.
    rebuild_interval_seconds: float = 300.0
    run_worker_in_process: bool = False
    recommendations_top_n: int = 100
    similar_top_n: int = 50
    holdout_days: float = 7.0
    guardrail_tolerance: float = 0.05
    # Holdout users scored per candidate: a stable sample (by id) past this many, so two
    # rebuilds minutes apart score nearly the same shoppers and the guardrail compares like
    # with like; 0 scores them all.
    eval_max_users: int = Field(default=5000, ge=0)
    model_kind: Literal["auto", "als", "bpr", "itemknn", "ease"] = "auto"
    # In auto mode all candidates compete on the holdout at most this often; rebuilds in
    # between retrain the winner only.
    reselect_hours: float = 24.0
    event_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "view": 1.0,
            "click": 2.0,
            "rec_click": 2.0,
            "add_to_cart": 4.0,
            "rating": 3.0,
            "purchase": 8.0,
            "remove_from_cart": -2.0,
        }
    )
    decay_half_life_days: float = 30.0
    exclude_interacted: Literal["purchased", "all"] = "purchased"
    use_gpu: bool = False
    # Real-time updates: queued shoppers beyond this wait for the next full rebuild.
    realtime_queue_max: int = 200_000
    realtime_enabled: bool = True

    # Operations (dashboard, rate limiting, CORS, erasure).
    dashboard_refresh_seconds: int = 15
    # Requests per API key per window; 0 turns rate limiting off.
    rate_limit_requests: int = 0
    rate_limit_window_seconds: int = 60
    # Comma list of origins allowed to call the API from a browser ("*" for any); empty: off.
    cors_origins: str = ""
    # FastAPI's native OpenTelemetry spans and metrics (needs an OpenTelemetry SDK provider
    # set up in the process). Off: its per-request provider checks cost a few percent of the
    # hottest read's CPU, and /metrics already has per-route counts and latencies.
    opentelemetry: bool = False
    # Key of the HMAC that hashes erased user ids in the log (empty: plain SHA-256).
    erasure_hash_key: str = ""
    # Port on which `brandlift worker` serves its own counters (rebuilds, real-time updates)
    # for Prometheus; 0: none (the API's /metrics has every other figure).
    worker_metrics_port: int = 0
    # Added to the worker process's nice value: when API and worker share cores, the kernel
    # then serves requests first and the worker's batches take what is left (0: unchanged).
    worker_nice: int = Field(default=10, ge=0, le=19)

    # Marketing evaluation: purchases of a recommended item this long after the list was
    # served are attributed to it; events younger than the settle time wait for the next
    # analytics pass (so lists still buffered in an API process land first).
    attribution_window_hours: float = 24.0
    analytics_settle_seconds: float = 2.0
    # A report request folds feedback the worker has not reached yet for at most this long
    # (0: until done), then answers with `up_to_date: false`.
    analytics_request_budget_seconds: float = 0.3
    # How often each API process re-reads the running experiments (assignment is in memory).
    experiments_refresh_seconds: float = 5.0

    # Brand promotion: a boost is shrunk until the holdout NDCG@10 drops by at most this
    # (relative); this share of each campaign's eligible shoppers is held out (brand lift).
    promotion_ndcg_tolerance: float = Field(default=0.02, ge=0, le=1)
    promotion_holdout: float = Field(default=0.1, ge=0, le=0.5)

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("database_url")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("DATABASE_URL must not be empty")
        return value.strip()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
