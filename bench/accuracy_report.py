"""The bench/RESULTS.md section of bench/accuracy.py: command, method, table, verdicts."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.training.build import DEFAULT_PARAMS

# From the data README: implicit 0.7.3 directly on the same split.
REFERENCE = {"popularity": (0.151, 0.154), "ALS reference params": (0.208, 0.211)}
GROUPS = {
    "binary": "binary (README)",
    "service": "service preprocessing",
}


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "-"


def _row(matrix: str, name: str, m: dict[str, Any], val: float | None, params: str) -> str:
    note = f" ({m['note']})" if "note" in m else ""
    shown = "-" if val is None else f"{val:.3f}"
    return (
        f"| {matrix} | {name}{note} | {m['ndcg@10']:.3f} ± {m['ndcg_se']:.3f} | "
        f"{m['recall@10']:.3f} | {m['map@10']:.3f} | {m['coverage']:.3f} | {shown} | {params} |"
    )


def paired(a: np.ndarray, b: np.ndarray) -> str:
    """Mean per-user NDCG difference and its standard error (same users, same targets)."""
    diff = np.asarray(a) - np.asarray(b)
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    return f"{diff.mean():+.3f} (paired s.e. {se:.3f})"


def table(
    rows: list[dict[str, Any]], service: list[dict[str, Any]], groups: dict[str, str] = GROUPS
) -> str:
    lines = [
        "| train matrix | model | NDCG@10 ± s.e. | recall@10 | MAP@10 | coverage "
        "| validation NDCG@10 | params |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(_row(groups[r["group"]], r["name"], r["m"], r["val"], _params(r["params"])))
    for s in service:
        label = f"**THE SERVICE** (EXCLUDE_INTERACTED={s['exclude']}; picked `{s['kind']}`)"
        if s["exclude"] != "all":
            label = f"the service with the default EXCLUDE_INTERACTED={s['exclude']}"
        lines.append(
            _row("service (real pipeline)", label, s["metrics"], None, _params(s["params"]))
        )
    return "\n".join(lines)


def report(
    rows: list[dict[str, Any]],
    service: list[dict[str, Any]],
    n_test: int,
    targets: int,
    n_val: int,
    args: dict[str, Any],
    seconds: float,
) -> str:
    by = {(r["group"], r["name"]): r["m"] for r in rows}
    pop = by[("binary", "popularity")]
    ref = by[("binary", "implicit ALS, reference params")]
    als_bin = by[("binary", "implicit ALS, tuned")]
    als_svc = by[("service", "implicit ALS, tuned")]
    main = service[0]
    m = main["metrics"]
    ratio = m["ndcg@10"] / pop["ndcg@10"]
    best = max(rows, key=lambda r: r["m"]["ndcg@10"])
    recent = by[("binary", "popularity, last 30 days")]
    run = main["run_metrics"] or {}
    candidates = ", ".join(
        f"{c['kind']} {c['metrics']['ndcg@10']:.3f}" for c in run.get("candidates", [])
    )
    baseline = (run.get("baseline_popular") or {}).get("ndcg@10")
    other = service[1] if len(service) > 1 else None
    same_pop = (round(pop["ndcg@10"], 3), round(pop["recall@10"], 3)) == REFERENCE["popularity"]
    verdict_als = "met" if m["ndcg@10"] >= als_bin["ndcg@10"] else "NOT met"
    verdict_pop = "met" if ratio >= 3 else "NOT met"
    cmd = (
        f"OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/accuracy.py --budget {args['budget']:g} "
        f"--holdout-days {args['holdout_days']:g}"
    )
    lines = [
        f"`{cmd}` ({seconds:.0f} s in all)",
        "",
        "MovieLens-100K (943 users, 1,682 movies, 100,000 ratings), the data README's reference "
        "split: ratings sorted by time, the last 10% are the test window; targets are test "
        "items the user had not rated in train, users seen in train only "
        f"({n_test} users, {targets} targets). recall@10 = hits / min(10, |targets|) averaged "
        "over users, NDCG binary; our metric code agrees with "
        "`implicit.evaluation.ranking_metrics_at_k` to 1e-9 on every direct ALS run (checked "
        f"in the script). With {n_test} users one standard error of NDCG@10 is about "
        f"{m['ndcg_se']:.3f}: differences of that size between rows are noise.",
        "",
        "- *binary (README)*: every rating is a 1, as in the README's reference figures.",
        "- *service preprocessing*: the confidence matrix the worker builds with its default "
        "settings (`rating` weight 3 x stars / 5, halved every 30 days of age, log1p), fitted "
        "with the service's own model classes (ALS is implicit's ALS called directly).",
        "- Tuning (`app/training/tuning.py`, coordinate descent over its default grids, "
        f"{args['budget']:g} s in all) and selection ran on a validation split cut the same "
        f"way from the training window ({n_val} users); chosen params were refitted on the "
        "whole training window and scored once on the test window.",
        "- **THE SERVICE**: the training window's 90,000 ratings went into a fresh Postgres "
        "database through the service's own code (`app.catalog.service.upsert` for movies, "
        "first genre as category and all genres as tags, and users with their attributes; "
        "`app.events.service.store_events` for `rating` events with value and timestamp, "
        "moved forward so the window ends at the moment of the run, because the worker "
        "measures time decay and popular windows from the clock); then "
        "`app.training.pipeline.rebuild(ctx)` ran with default settings except "
        f"`HOLDOUT_DAYS={args['holdout_days']:g}` (the test window spans "
        f"{args['test_days']:.0f} days) and "
        "`EXCLUDE_INTERACTED=all`: a rating means the user has already seen the movie, and "
        "the default (`purchased`) would only exclude purchases. Each target user's top-10 "
        "was then read with `GET /v1/users/{id}/recommendations` from a `brandlift serve` "
        "process and scored on the same targets.",
        "",
        table(rows, service),
        "",
        f"- THE SERVICE vs popularity: **{ratio:.2f}x** NDCG@10 (issue goal 3x: {verdict_pop}; "
        f"the best model fitted directly, {best['name']} on the {GROUPS[best['group']]} "
        f"matrix, reaches {best['m']['ndcg@10'] / pop['ndcg@10']:.2f}x: 3x is out of reach on "
        "this split for every model measured). Much of this split is recency: popularity "
        f"counted over the training window's last 30 days alone scores {recent['ndcg@10']:.3f}"
        f", and THE SERVICE is {m['ndcg@10'] / recent['ndcg@10']:.2f}x that.",
        f"- THE SERVICE vs direct implicit ALS, tuned, binary matrix (the issue's \"at least "
        f'matches direct ALS"): {paired(m["per_user"], als_bin["per_user"])}: {verdict_als}. '
        f"vs direct ALS tuned on the service's own matrix: "
        f"{paired(m['per_user'], als_svc['per_user'])}; vs ALS with the reference params: "
        f"{paired(m['per_user'], ref['per_user'])}.",
        f"- What the service did: loaded {main['events']:,} events in "
        f"{main['load_seconds']:.1f} s; the rebuild (load, preprocess, select, fit, lists, "
        f"publish) took {main['rebuild_seconds']:.1f} s. Its own holdout "
        f"({run.get('holdout_users', '?')} users over the last {args['holdout_days']:g} days "
        f"of the training window) scored the candidates at default params: {candidates} "
        f"(popularity {baseline if baseline is None else f'{baseline:.3f}'}); it published "
        f"`{main['kind']}`. Strategies served to the {n_test} users: {main['strategies']}.",
        f"- Exclusion check (EXCLUDE_INTERACTED=all): {main['seen_in_top10']} already-rated "
        f"movies in the served top-10s, {main['seen_in_published']} in the whole published "
        f"lists (mean length {main['published_len']:.0f}); served lists equal the head of the "
        f"published ones: {main['served_same_as_published']}.",
    ]
    changes = "; ".join(
        f"{kind}: "
        + ", ".join(
            f"{k} {v} -> {DEFAULT_PARAMS[kind][k]}"
            for k, v in old.items()
            if DEFAULT_PARAMS[kind].get(k) != v
        )
        for kind, old in args["previous_defaults"].items()
    )
    lines.append(
        f"- Defaults changed after this benchmark ({changes}): the *service defaults* and "
        "*previous defaults* rows show both on the validation split and the test window "
        f"(THE SERVICE picked `{main['kind']}` here; the change matters where ALS or item-kNN "
        "is picked)."
    )
    if other is not None:
        om = other["metrics"]
        lines.append(
            f"- With the default EXCLUDE_INTERACTED={other['exclude']}, "
            f"{other['seen_in_top10']} of the {10 * n_test} served slots are movies the user "
            f"already rated, and NDCG@10 falls to {om['ndcg@10']:.3f}: for ratings data, "
            "configure `all`."
        )
    lines += [
        f"- Reference figures (data README, implicit 0.7.3 directly): popularity NDCG@10 "
        f"{REFERENCE['popularity'][0]}, recall@10 {REFERENCE['popularity'][1]} "
        f"({'reproduced exactly' if same_pop else 'NOT reproduced'} here); ALS with the "
        f"reference params NDCG@10 {REFERENCE['ALS reference params'][0]}, recall@10 "
        f"{REFERENCE['ALS reference params'][1]} (seed not stated; our {ref['note']}, "
        f"mean {ref['ndcg@10']:.3f} / {ref['recall@10']:.3f}).",
    ]
    return "\n".join(lines)
