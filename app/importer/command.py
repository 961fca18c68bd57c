"""The `brandlift import` command's body (kept out of app/cli.py so that stays a table of
contents)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from app.config import get_settings
from app.importer.mapping import ID_FIELDS, PRESETS, Options, parse_pairs
from app.importer.readers import FORMATS, detect_format, open_source
from app.importer.service import run_import

KINDS = tuple(ID_FIELDS)
TIMESTAMP_UNITS = ("auto", "s", "ms", "iso")


def import_file(
    kind: str,
    path: Path,
    *,
    fmt: str,
    mapping: list[str],
    event_types: list[str],
    timestamp_unit: str,
    assume_utc: bool,
    delimiter: str | None,
    rejects: Path | None,
    batch_size: int | None,
    dry_run: bool,
) -> None:
    """Resolve the options, run the import, print the summary."""
    if kind not in KINDS:
        raise typer.BadParameter(f"choose one of {', '.join(KINDS)}", param_hint="KIND")
    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file", param_hint="FILE")
    if timestamp_unit not in TIMESTAMP_UNITS:
        raise typer.BadParameter(
            f"choose one of {', '.join(TIMESTAMP_UNITS)}", param_hint="--timestamp-unit"
        )
    preset = PRESETS.get(fmt)
    try:
        opts = Options(
            kind=kind,
            mapping={**(preset.mapping if preset else {}), **parse_pairs(mapping, "--map")},
            types={**(preset.types if preset else {}), **parse_pairs(event_types, "--event-type")},
            timestamp_unit=preset.timestamp_unit
            if preset and timestamp_unit == "auto"
            else timestamp_unit,
            assume_utc=assume_utc,
        )
        file_format = preset.format if preset else fmt
        if file_format == "auto":
            file_format = detect_format(path)
        if file_format not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if preset and preset.kind != kind:
        raise typer.BadParameter(f"the {fmt} format holds {preset.kind}, not {kind}")
    rejects_path = rejects or Path.cwd() / f"{path.name}.rejects.jsonl"
    source = open_source(path, file_format, delimiter)
    report = asyncio.run(
        run_import(
            get_settings(),
            source,
            opts,
            rejects_path,
            batch_size=batch_size,
            dry_run=dry_run,
        )
    )
    typer.echo(("dry run, nothing stored: " if dry_run else "") + report.summary())
