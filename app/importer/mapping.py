"""From a file's record to the API's shape: column mapping, presets, types, derived event ids.

After mapping, a record is validated by the same pydantic model as the HTTP API
(EventIn, ItemIn, UserIn, CampaignIn), so a file can carry nothing the API would refuse.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel

from app.catalog.schemas import CampaignIn, ItemIn, UserIn
from app.events.schemas import EventIn

MODELS: dict[str, type[BaseModel]] = {
    "events": EventIn,
    "items": ItemIn,
    "users": UserIn,
    "campaigns": CampaignIn,
}
ID_FIELDS = {
    "events": "event_id",
    "items": "item_id",
    "users": "user_id",
    "campaigns": "campaign_id",
}
LIST_FIELDS = {"items": ("tags",), "campaigns": ("item_ids",)}
OBJECT_FIELDS = {"events": ("context",), "users": ("attributes",), "campaigns": ("promotion",)}
# Nested targets a mapping may write into: --map transactionid=context.transaction_id
NESTED = {"events": "context", "users": "attributes"}
NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?([eE][+-]?\d+)?$")
INTEGER = re.compile(r"^[+-]?\d+$")
MS_THRESHOLD = 1e11  # a larger epoch number is milliseconds (1e11 s is the year 5138)


@dataclass(frozen=True)
class Preset:
    format: str
    kind: str
    mapping: dict[str, str]
    types: dict[str, str]
    timestamp_unit: str


PRESETS = {
    # RetailRocket's events.csv: timestamp (ms),visitorid,event,itemid,transactionid
    "retailrocket": Preset(
        format="csv",
        kind="events",
        mapping={
            "visitorid": "user_id",
            "event": "type",
            "itemid": "item_id",
            "transactionid": "context.transaction_id",
        },
        types={"view": "view", "addtocart": "add_to_cart", "transaction": "purchase"},
        timestamp_unit="ms",
    )
}


class Rejected(ValueError):
    """A record that cannot become an API row; the message is the reason."""


@dataclass
class Options:
    kind: str
    mapping: dict[str, str] = field(default_factory=dict)  # source column -> field
    types: dict[str, str] = field(default_factory=dict)  # source event type -> API type
    timestamp_unit: str = "auto"  # auto | s | ms | iso
    assume_utc: bool = False


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """['a=b', ...] -> {'a': 'b'}; a malformed pair is a usage error."""
    out = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValueError(f"{what} entries look like SOURCE=TARGET, got {pair!r}")
        out[source.strip()] = target.strip()
    return out


def _epoch(number: int | float, unit: str) -> datetime:
    """An epoch number (seconds or milliseconds) as an aware UTC datetime."""
    millis = unit == "ms" or (unit == "auto" and abs(number) >= MS_THRESHOLD)
    if not millis:
        return datetime.fromtimestamp(number, UTC)
    if isinstance(number, int):  # integer arithmetic keeps the milliseconds exact
        return datetime.fromtimestamp(number // 1000, UTC) + timedelta(milliseconds=number % 1000)
    return datetime.fromtimestamp(number / 1000, UTC)


def _number(text: str) -> int | float | None:
    """The number a text spells, or None (cheap for the common all-digits case)."""
    if text.isdigit():
        return int(text)
    if NUMBER.match(text):
        return int(text) if INTEGER.match(text) else float(text)
    return None


def _timestamp(value: Any, unit: str, assume_utc: bool) -> Any:
    """Epoch numbers become datetimes; offset-less times are UTC only with --assume-utc."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None and assume_utc else value
    if unit != "iso":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _epoch(value, unit)
        number = _number(value) if isinstance(value, str) else None
        if number is not None:
            return _epoch(number, unit)
    if isinstance(value, str) and assume_utc:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value  # the model's own message says what is wrong
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


def _scalar(value: Any) -> Any:
    """CSV text for a free-form attribute: numbers and booleans get their type back."""
    if not isinstance(value, str):
        return value
    number = _number(value)
    if number is not None:
        return number
    return {"true": True, "false": False}.get(value.lower(), value)


def _decode(value: Any, name: str, want: type) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if want is list and not text.startswith("["):
        return [part.strip() for part in text.split("|") if part.strip()]
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Rejected(f"{name}: not valid JSON") from None


def derived_event_id(record: dict[str, Any]) -> str:
    """A deterministic id from the row's content, so re-importing a file stores nothing twice."""
    blob = orjson.dumps(record, option=orjson.OPT_SORT_KEYS, default=str)
    return "imp-" + hashlib.sha256(blob).hexdigest()[:32]


def normalise(row: dict[str, Any], opts: Options) -> dict[str, Any]:
    """Map one record to the API's field names and types (validation comes after)."""
    kind = opts.kind
    nested_name = NESTED.get(kind)
    out: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    for column, value in row.items():
        if value is None or value == "":
            continue  # an empty cell is "not given", as a field left out of an API call
        target = opts.mapping.get(column, column)
        if nested_name and target.startswith(nested_name + "."):
            nested[target[len(nested_name) + 1 :]] = _scalar(value)
        else:
            out[target] = value
    for name in OBJECT_FIELDS.get(kind, ()):
        if name in out:
            out[name] = _decode(out[name], name, dict)
    for name in LIST_FIELDS.get(kind, ()):
        if name in out:
            out[name] = _decode(out[name], name, list)
    if kind == "users":
        known = set(UserIn.model_fields)
        extra = {k: _scalar(out.pop(k)) for k in list(out) if k not in known}
        nested = {**extra, **nested}
    if nested and nested_name:
        base = out.get(nested_name)
        out[nested_name] = {**(base if isinstance(base, dict) else {}), **nested}
    if kind == "events":
        if isinstance(out.get("type"), str):
            out["type"] = opts.types.get(out["type"], out["type"])
        if "timestamp" in out:
            out["timestamp"] = _timestamp(out["timestamp"], opts.timestamp_unit, opts.assume_utc)
        if "event_id" not in out:
            out["event_id"] = derived_event_id(out)
    return out
