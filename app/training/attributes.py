"""Shoppers' free-form attributes (POST /v1/users) as model columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class AttributeEncoder:
    """Free-form scalar attributes as model columns: numbers, booleans, one-hot strings."""

    numeric: dict[str, float] = field(default_factory=dict)  # name -> fill value (median)
    flags: list[str] = field(default_factory=list)
    onehot: dict[str, list[str]] = field(default_factory=dict)
    max_attributes: int = 12
    max_values: int = 6

    def fit(self, rows: list[dict[str, Any]]) -> AttributeEncoder:
        counts: dict[str, int] = {}
        for row in rows:
            for name in row:
                counts[name] = counts.get(name, 0) + 1
        wanted = [
            n for n, c in sorted(counts.items(), key=lambda kv: -kv[1]) if c >= 0.05 * len(rows)
        ]
        for name in sorted(wanted[: self.max_attributes]):
            values = [r[name] for r in rows if r.get(name) is not None]
            if values and all(isinstance(v, bool) for v in values):
                self.flags.append(name)
            elif values and all(isinstance(v, int | float) for v in values):
                self.numeric[name] = float(np.median(np.asarray(values, dtype=np.float64)))
            else:
                freq: dict[str, int] = {}
                for v in values:
                    freq[str(v)] = freq.get(str(v), 0) + 1
                common = sorted(freq, key=lambda v: (-freq[v], v))[: self.max_values]
                self.onehot[name] = [v for v in common if freq[v] >= 0.01 * len(rows)]
        return self

    @property
    def names(self) -> list[str]:
        return (
            [f"attr.{n}" for n in self.numeric]
            + [f"attr.{n}" for n in self.flags]
            + [f"attr.{n}={v}" for n, values in self.onehot.items() for v in values]
        )

    def transform(self, rows: list[dict[str, Any]]) -> np.ndarray:
        out = np.zeros((len(rows), len(self.names)), dtype=np.float64)
        for i, row in enumerate(rows):
            col = 0
            for name, fill in self.numeric.items():
                v = row.get(name)
                ok = isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
                out[i, col] = float(v) if ok else fill  # type: ignore[arg-type]
                col += 1
            for name in self.flags:
                out[i, col] = 1.0 if row.get(name) is True else 0.0
                col += 1
            for name, values in self.onehot.items():
                v = row.get(name)
                for value in values:
                    out[i, col] = 1.0 if v is not None and str(v) == value else 0.0
                    col += 1
        return out
