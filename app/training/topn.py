"""Row-wise top-n of dense score blocks, the inner loop of every batch recommend.

Scoring a block (a sparse product, a dense matmul) and partitioning it release the GIL, so
blocks run on a small thread pool: on two cores a rebuild's lists and holdout scoring take
about half the wall time, and memory stays bounded by (threads x one block).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

# A block's scores and argpartition's int64 indices stay under glibc's mmap threshold (32 MiB),
# so blocks reuse heap memory instead of faulting in fresh pages every time (measured: -15%).
BLOCK_FLOATS = 1 << 21
MAX_THREADS = 4


WORKERS = max(1, min(MAX_THREADS, os.cpu_count() or 1))


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(WORKERS, thread_name_prefix="topn")


def top_n(scores: np.ndarray, n: int, floor: float = -np.inf) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-n of a dense score block, (rows, n), best first; scores at or below
    `floor` (and -inf, the mark of a masked item) come back as id -1 with score 0."""
    rows, cols = scores.shape
    ids_out = np.full((rows, n), -1, dtype=np.int64)
    scores_out = np.zeros((rows, n), dtype=np.float32)
    m = min(n, cols)
    if m == 0 or rows == 0:
        return ids_out, scores_out
    if np.isfinite(floor):
        # Unreachable items become distinct values worse than any real score: numpy's
        # introselect slows down several-fold on the long runs of equal zeros a sparse
        # model leaves, and these cost one pass.
        ramp = np.arange(cols, dtype=np.float32) + np.float32(1.0 - floor)
        negated = np.where(scores > floor, -scores, ramp)
    else:
        negated = -scores
    part = (
        np.argpartition(negated, m - 1, axis=1)[:, :m]
        if m < cols
        else np.tile(np.arange(cols), (rows, 1))
    )
    part_scores = -np.take_along_axis(negated, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1)
    top = np.take_along_axis(part_scores, order, axis=1)
    valid = top > floor
    ids_out[:, :m] = np.where(valid, ids, -1)
    scores_out[:, :m] = np.where(valid, top, 0.0)
    return ids_out, scores_out


def first_valid(
    ids: np.ndarray, scores: np.ndarray, valid: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the first n entries marked `valid`, in their order (a filter applied after
    ranking): (ids -1-padded, scores 0-padded, how many each row kept)."""
    order = np.argsort(~valid, axis=1, kind="stable")[:, :n]  # stable: keeps the ranking
    kept_ids = np.take_along_axis(ids, order, axis=1)
    kept_scores = np.take_along_axis(scores, order, axis=1)
    counts = np.minimum(valid.sum(axis=1), n)
    past = np.arange(order.shape[1])[None, :] >= counts[:, None]
    kept_ids[past] = -1
    kept_scores[past] = 0
    return kept_ids, kept_scores, counts


def block_top_n(
    rows: np.ndarray,
    n: int,
    n_items: int,
    score: Callable[[np.ndarray], np.ndarray],
    floor: float = -np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """top_n of score(chunk) over `rows`, a bounded block at a time, blocks in parallel."""
    rows = np.asarray(rows, dtype=np.int64)
    step = max(1, BLOCK_FLOATS // max(n_items, 1))
    # Smaller blocks when that is what it takes to keep every thread busy.
    step = max(1, min(step, -(-len(rows) // WORKERS)))
    chunks = [rows[start : start + step] for start in range(0, len(rows), step)]

    def one(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return top_n(score(chunk), n, floor)

    if len(chunks) <= 1 or len(rows) < 256:  # a thread hop costs more than a small block
        results = [one(chunk) for chunk in chunks]
    else:
        results = list(_pool().map(one, chunks))
    ids_out = [np.empty((0, n), np.int64), *(ids for ids, _ in results)]
    scores_out = [np.empty((0, n), np.float32), *(top for _, top in results)]
    return np.vstack(ids_out), np.vstack(scores_out)
