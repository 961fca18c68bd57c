"""The planted-world fixture lives in tests/live_world.py (a plugin of the root conftest)."""

from tests.live_world import LiveWorld, ingest

__all__ = ["LiveWorld", "ingest"]
