"""Reading the figures a dashboard page shows and checking them against /v1/ops/status."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

APPROX_SECONDS = 60.0  # ages move between two reads; anything else must match exactly


class FactParser(HTMLParser):
    """Collects every element carrying data-fact: (path, format, raw value, shown text)."""

    def __init__(self) -> None:
        super().__init__()
        self.facts: list[dict[str, str]] = []
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "data-fact" in values:
            self._open = {
                "path": values["data-fact"],
                "format": values.get("data-format", "text"),
                "value": values.get("data-value", ""),
                "text": "",
            }

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == "span":
            self._open["text"] = self._open["text"].strip()
            self.facts.append(self._open)
            self._open = None


def page_facts(html: str) -> dict[str, dict[str, str]]:
    parser = FactParser()
    parser.feed(html)
    return {f["path"]: f for f in parser.facts}


def resolve(status: dict[str, Any], path: str) -> Any:
    node: Any = status
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def shown(value: Any, fmt: str) -> str:
    """How the page must write `value` (written independently of the app's formatter)."""
    if value is None:
        return "\u2013"
    if fmt == "int":
        return f"{int(value):,}"
    if fmt == "pct":
        return f"{value * 100:.1f}%"
    if fmt == "float":
        return f"{value:.4f}"
    if fmt == "time":
        return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if fmt == "age":
        for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
            if value >= size:
                return f"{value / size:.1f} {unit}"
        return f"{value:.0f} s"
    return str(value)


def mismatches(facts: dict[str, dict[str, str]], status: dict[str, Any]) -> list[str]:
    """Every figure on the page that disagrees with the status document."""
    wrong = []
    for path, fact in facts.items():
        if path == "generated_at":
            continue  # two reads, two moments
        expected = resolve(status, path)
        if fact["format"] == "age" and expected is not None:
            if abs(float(fact["value"]) - float(expected)) > APPROX_SECONDS:
                wrong.append(f"{path}: page {fact['value']} vs status {expected}")
            if fact["text"] != shown(float(fact["value"]), "age"):
                wrong.append(f"{path}: {fact['text']!r} does not show {fact['value']}")
            continue
        if fact["text"] != shown(expected, fact["format"]):
            wrong.append(f"{path}: page {fact['text']!r} vs status {expected!r}")
    return wrong
