"""Reading records from CSV, JSON lines (optionally gzipped) or Parquet, with progress.

Each reader yields (record_number, row, error): `row` is a dict of column -> value (None when
nothing could be read), and `error`, when set, says why the record is refused as it stands
(it goes to the rejects file).
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

Record = tuple[int, dict[str, Any] | None, str | None]
FORMATS = ("csv", "jsonl", "parquet")
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def detect_format(path: Path) -> str:
    """The format named by the file's suffix (a trailing .gz is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    found = SUFFIXES.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise ValueError(f"cannot tell the format of {path.name}; pass --format")
    return found


@dataclass
class Source:
    """Records plus how far through the file the reader is (bytes or rows, like `total`)."""

    records: Iterator[Record]
    total: int
    unit: str
    _raw: IO[bytes] | None = None
    _rows: list[int] = field(default_factory=lambda: [0])

    def position(self) -> int:
        if self._raw is not None:
            return self._raw.tell()
        return self._rows[0]

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()


def _lines(raw: IO[bytes], gzipped: bool) -> Iterator[bytes]:
    if gzipped:
        yield from gzip.GzipFile(fileobj=raw)
    else:
        yield from raw


def _csv(raw: IO[bytes], gzipped: bool, delimiter: str) -> Iterator[Record]:
    text = (
        line.decode("utf-8-sig" if i == 0 else "utf-8")
        for i, line in enumerate(_lines(raw, gzipped))
    )
    reader = csv.DictReader(text, delimiter=delimiter, restkey="\x00extra")
    width = None
    for number, row in enumerate(reader, start=1):
        width = width or len(reader.fieldnames or ())
        if "\x00extra" in row:
            row["_extra_fields"] = row.pop("\x00extra")
            yield number, row, f"row has more fields than the header's {width}"
        elif any(value is None for value in row.values()):
            yield number, row, f"row has fewer fields than the header's {width}"
        else:
            yield number, row, None


def _jsonl(raw: IO[bytes], gzipped: bool) -> Iterator[Record]:
    number = 0
    for line in _lines(raw, gzipped):
        if not line.strip():
            continue
        number += 1
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, None, f"not valid JSON: {exc}"
            continue
        if isinstance(row, dict):
            yield number, row, None
        else:
            yield number, None, "each line must be a JSON object"


def _parquet(path: Path, counter: list[int]) -> tuple[Iterator[Record], int]:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path)

    def records() -> Iterator[Record]:
        number = 0
        for batch in table.iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                number += 1
                counter[0] = number
                yield number, row, None

    return records(), int(table.metadata.num_rows)


def open_source(path: Path, fmt: str, delimiter: str | None = None) -> Source:
    """Open `path` as `fmt` (csv, jsonl or parquet)."""
    if fmt == "parquet":
        counter = [0]
        records, total = _parquet(path, counter)
        return Source(records, total, "rows", None, counter)
    gzipped = path.suffix.lower() == ".gz"
    raw = path.open("rb")
    size = path.stat().st_size
    if fmt == "csv":
        sep = delimiter or ("\t" if ".tsv" in [s.lower() for s in path.suffixes] else ",")
        return Source(_csv(raw, gzipped, sep), size, "bytes", raw)
    if fmt == "jsonl":
        return Source(_jsonl(raw, gzipped), size, "bytes", raw)
    raw.close()
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
