"""Bulk import benchmark: `brandlift import events FILE` against a raw binary COPY of the rows.

    .venv/bin/python bench/import_bench.py                    # 200,000 rows, writes RESULTS.md
    .venv/bin/python bench/import_bench.py --rows 50000 --no-write   # quick look

Generates shop events (the ingest benchmark's workload), writes them as a CSV, a JSON lines
and a Parquet file, and on a fresh migrated Postgres database runs the real command (a
subprocess, as an operator would) on each file after emptying the tables: every row read,
mapped, validated with the API's models and written through COPY in batches. The CSV import is
then run again on the full table to time an idempotent re-run (every row already present).
The reference is one binary COPY (asyncpg copy_records_to_table) of the same rows into the same
`events` table with the same indexes, after TRUNCATE, in the same run. Rates are rows over the
command's wall-clock time, Python start-up included; the command's own figure (from its first
row to its last write) is shown beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    create_database,
    drop_database,
    migrate,
    server_env,
    spread,
    write_section,
)
from bench.ingest import copy_rows, count_rows, reset_tables
from bench.ingest_workload import EVENT_COLUMNS, generate

FILE_COLUMNS = [c if c != "ts" else "timestamp" for c in EVENT_COLUMNS]
SUMMARY = re.compile(
    r"(\d[\d,]*) rows read, (\d[\d,]*) stored, (\d[\d,]*) already present, "
    r"(\d[\d,]*) rejected in ([\d.]+) s \(([\d,]+) rows/s\)"
)


def write_files(records: list[tuple[Any, ...]], folder: Path) -> dict[str, Path]:
    """The same rows as CSV, JSON lines and Parquet, in the API's field names."""
    rows = [
        {
            name: (value.isoformat() if name == "timestamp" else value)
            for name, value in zip(FILE_COLUMNS, record, strict=True)
            if value is not None
        }
        for record in records
    ]
    paths = {fmt: folder / f"events.{ext}" for fmt, ext in (("csv", "csv"), ("jsonl", "jsonl"))}
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FILE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with paths["jsonl"].open("wb") as out:
        for row in rows:
            if "context" in row:
                row = {**row, "context": orjson.loads(row["context"])}
            out.write(orjson.dumps(row) + b"\n")
    columns = {
        name: [
            record[i].isoformat() if name == "timestamp" and record[i] else record[i]
            for record in records
        ]
        for i, name in enumerate(FILE_COLUMNS)
    }
    paths["parquet"] = folder / "events.parquet"
    pq.write_table(pa.table(columns), paths["parquet"])
    return paths


def run_import(url: str, path: Path) -> dict[str, Any]:
    """`brandlift import events PATH` as a subprocess; wall-clock and the command's summary."""
    rejects = path.with_suffix(".rejects.jsonl")
    command = [sys.executable, "-c", "from app.cli import main; main()", "import", "events"]
    command.append(str(path))
    command += ["--rejects", str(rejects)]
    began = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env=server_env(url), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    found = SUMMARY.search(done.stdout)
    if found is None:
        raise RuntimeError(f"no summary in: {done.stdout[-1000:]}")
    read, stored, present, rejected = (int(g.replace(",", "")) for g in found.groups()[:4])
    return {
        "seconds": seconds,
        "read": read,
        "stored": stored,
        "present": present,
        "rejected": rejected,
        "own_rate": float(found.group(6).replace(",", "")),
    }


async def import_round(url: str, fmt: str, path: Path, rows: int) -> dict[str, Any]:
    await reset_tables(url)
    result = await asyncio.to_thread(run_import, url, path)
    result.update(
        format=fmt,
        rate=rows / result["seconds"],
        rows_after=await count_rows(url),
    )
    result["ok"] = result["stored"] == rows == result["rows_after"] and not result["rejected"]
    return result


async def rerun_round(url: str, path: Path, rows: int) -> dict[str, Any]:
    """The CSV again on a table that holds every row: nothing stored, all already present."""
    result = await asyncio.to_thread(run_import, url, path)
    result.update(
        format="csv re-run",
        rate=rows / result["seconds"],
        rows_after=await count_rows(url),
    )
    result["ok"] = result["stored"] == 0 and result["present"] == rows == result["rows_after"]
    return result


async def copy_round(url: str, records: list[tuple[Any, ...]]) -> dict[str, Any]:
    await reset_tables(url)
    seconds, _ = await copy_rows(url, records)
    stored = await count_rows(url)
    return {"seconds": seconds, "rate": len(records) / seconds, "ok": stored == len(records)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = generate(args.rows, 1000)
    with tempfile.TemporaryDirectory(prefix="brandlift-import-bench-") as tmp:
        paths = write_files(work.records, Path(tmp))
        sizes = {fmt: path.stat().st_size / 2**20 for fmt, path in paths.items()}
        print(f"{args.rows:,} rows; files (MiB): {json.dumps(sizes)}", flush=True)
        url = await create_database()
        try:
            await asyncio.to_thread(migrate, url)
            imports: list[dict[str, Any]] = []
            copies: list[dict[str, Any]] = []
            for _ in range(args.repeat):
                for fmt in ("csv", "jsonl", "parquet"):
                    result = await import_round(url, fmt, paths[fmt], args.rows)
                    print("import", json.dumps(result), flush=True)
                    imports.append(result)
                rerun = await rerun_round(url, paths["csv"], args.rows)
                print("re-run", json.dumps(rerun), flush=True)
                imports.append(rerun)
                copied = await copy_round(url, work.records)
                print("copy", json.dumps(copied), flush=True)
                copies.append(copied)
        finally:
            if not args.keep_db:
                await drop_database(url)
    return {"rows": args.rows, "sizes": sizes, "imports": imports, "copies": copies}


def report(args: argparse.Namespace, out: dict[str, Any]) -> str:
    rows = out["rows"]
    best_copy = max(c["rate"] for c in out["copies"])
    by_format: dict[str, list[dict[str, Any]]] = {}
    for r in out["imports"]:
        by_format.setdefault(r["format"], []).append(r)
    cmd = "OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/import_bench.py"
    if rows != 200_000:
        cmd += f" --rows {rows}"
    cmd += f" --repeat {args.repeat}"
    all_ok = all(r["ok"] for r in out["imports"]) and all(c["ok"] for c in out["copies"])
    sizes = ", ".join(f"{fmt} {mib:.0f} MiB" for fmt, mib in out["sizes"].items())
    lines = [
        f"`{cmd}`",
        "",
        f"{rows:,} generated shop events (the ingest benchmark's workload) in three files "
        f"({sizes}), each loaded by `brandlift import events FILE` (a subprocess, defaults: "
        "batches of 5000 written through COPY, rows validated with the API's EventIn) into "
        "emptied tables of a fresh migrated Postgres database; then the CSV again on the full "
        "table (an idempotent re-run). The reference is one binary `COPY` (asyncpg "
        "`copy_records_to_table`) of the same rows into the same `events` table with the same "
        "indexes, after `TRUNCATE`, in the same run. `wall` includes the command's Python "
        "start-up; `own` is the rate the command prints (first row to last write).",
        "",
        "| file | best rows/s (wall) | best rows/s (own) | / COPY (wall) | runs (wall) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fmt, runs in by_format.items():
        best = max(runs, key=lambda r: r["rate"])
        lines.append(
            f"| {fmt} | **{best['rate']:,.0f}** | {max(r['own_rate'] for r in runs):,.0f} | "
            f"{best['rate'] / best_copy:.2f}x | {spread([r['rate'] for r in runs])} |"
        )
    lines += [
        f"| raw binary COPY | **{best_copy:,.0f}** | | 1.00x | "
        f"{spread([c['rate'] for c in out['copies']])} |",
        "",
        f"Every import stored all {rows:,} rows with none rejected, and every re-run stored 0 "
        f"and counted all {rows:,} as already present: {'yes' if all_ok else 'NO'}.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each kind")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--keep-db", action="store_true", help="keep the benchmark database")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    out = asyncio.run(run(args))
    section = report(args, out)
    print(section)
    if not args.no_write:
        write_section("Bulk import: brandlift import vs raw COPY (bench/import_bench.py)", section)
    ok = all(r["ok"] for r in out["imports"]) and all(c["ok"] for c in out["copies"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
