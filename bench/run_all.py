"""Run every benchmark under bench/ (what `make bench` does); each updates bench/RESULTS.md.

    .venv/bin/python bench/run_all.py              # all of them, in name order
    .venv/bin/python bench/run_all.py ingest serve # only these

A benchmark that fails (non-zero exit) does not stop the others; the exit status is non-zero
when any failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
MAIN_GUARD = 'if __name__ == "__main__":'


def is_benchmark(path: Path) -> bool:
    """A runnable script (it has a main guard); helper modules such as common.py have none."""
    return path.stem != "run_all" and MAIN_GUARD in path.read_text()


def benchmarks(selected: list[str]) -> list[Path]:
    """The benchmark scripts to run (bench/*.py with a main guard), optionally only `selected`."""
    found = sorted(p for p in BENCH.glob("*.py") if is_benchmark(p))
    if not selected:
        return found
    unknown = set(selected) - {p.stem for p in found}
    if unknown:
        raise SystemExit(f"no such benchmark: {', '.join(sorted(unknown))}")
    return [p for p in found if p.stem in selected]


def main(argv: list[str] | None = None) -> int:
    names = [a.removesuffix(".py") for a in (sys.argv[1:] if argv is None else argv)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    outcomes: list[tuple[str, int, float]] = []
    for script in benchmarks(names):
        print(f"=== {script.stem}", flush=True)
        began = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)], cwd=BENCH.parent, env=env)
        outcomes.append((script.stem, code, time.perf_counter() - began))
    print("=== summary")
    for name, code, seconds in outcomes:
        print(f"{name:20s} {'ok' if code == 0 else f'FAILED ({code})':12s} {seconds:7.1f}s")
    print(f"results: {BENCH / 'RESULTS.md'}")
    return 0 if all(code == 0 for _, code, _ in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
