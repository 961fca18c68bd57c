"""Experiment statistics: confidence intervals, two-sided tests, sample-ratio mismatch, verdict.

Units and tests:
- CTR = clicks / impressions, compared with a pooled two-proportion z-test; its 95% interval
  is Wilson's. Impressions of one user are not independent (some shoppers click much more
  than others, and heavy users see many lists), so each group's variance is clustered by
  user: the delta-method variance of the ratio, from the per-user sums of squares, gives a
  design effect (at least 1) and the test and interval use impressions / design effect as the
  sample size. With one impression per user this is the plain binomial test.
- conversion rate = users with an attributed purchase / users, same z-test and interval.
- revenue per user = attributed revenue / users (non-buyers count as 0), compared with Welch's
  t-test on the per-user totals (from their sum and sum of squares); t interval on the mean.
- lift = treatment / control - 1 on the experiment's primary metric.
- SRM: chi-square goodness of fit of users per group against the configured shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import stats as sps

ALPHA = 0.05
SRM_ALPHA = 0.001  # the usual threshold: SRM checks run on every look, false alarms are costly
MIN_USERS = 100  # per group, before any verdict
MIN_IMPRESSIONS = 500  # per group, for a CTR verdict
METRICS = ("ctr", "conversion_rate", "revenue_per_user")
_Z = float(sps.norm.ppf(1 - ALPHA / 2))


@dataclass
class Arm:
    """Totals of one group: per-user sums (revenue_sq is the sum of squared user revenue)."""

    name: str
    users: int = 0
    impressions: int = 0
    clicks: int = 0
    converters: int = 0
    revenue: float = 0.0
    revenue_sq: float = 0.0
    # Per-user sums of impressions^2, clicks^2 and impressions x clicks (None: unknown, the
    # impressions are then taken as independent).
    impressions_sq: float | None = None
    clicks_sq: float | None = None
    impressions_clicks: float | None = None


def design_effect(arm: Arm) -> float:
    """Variance of the CTR clustered by user over its binomial variance (at least 1).

    Delta method for the ratio of per-user sums: var(CTR) = n / (n - 1) x sum over users of
    (clicks - CTR x impressions)^2 / impressions^2.
    """
    if arm.impressions_sq is None or arm.clicks_sq is None or arm.impressions_clicks is None:
        return 1.0
    n, total = arm.users, arm.impressions
    if n < 2 or total <= 0:
        return 1.0
    r = arm.clicks / total
    binomial = r * (1 - r) / total
    if binomial <= 0:
        return 1.0
    residual = arm.clicks_sq - 2 * r * arm.impressions_clicks + r * r * arm.impressions_sq
    clustered = n / (n - 1) * max(0.0, residual) / (total * total)
    return max(1.0, clustered / binomial)


def rate(successes: float, trials: float) -> float:
    return successes / trials if trials else 0.0


def wilson_ci(
    successes: float, trials: float, z: float = _Z, deff: float = 1.0
) -> tuple[float, float]:
    """Wilson score interval for a proportion (on trials / deff effective trials); (0, 1)
    without data."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    trials = trials / deff
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def two_proportion_p(
    x1: int, n1: int, x2: int, n2: int, deff1: float = 1.0, deff2: float = 1.0
) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test (each group's variance scaled by
    its design effect); None without data."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0  # both groups all-0 or all-1: no evidence of a difference
    se = math.sqrt(pooled * (1 - pooled) * (deff1 / n1 + deff2 / n2))
    z = (x2 / n2 - x1 / n1) / se
    return float(2 * sps.norm.sf(abs(z)))


def mean_sd(total: float, total_sq: float, n: int) -> tuple[float, float]:
    """Mean and sample standard deviation from a sum and a sum of squares."""
    if n <= 0:
        return 0.0, 0.0
    mean = total / n
    if n == 1:
        return mean, 0.0
    var = max(0.0, (total_sq - n * mean * mean) / (n - 1))
    return mean, math.sqrt(var)


def mean_ci(total: float, total_sq: float, n: int) -> tuple[float, float]:
    """95% t interval of a mean; (mean, mean) for fewer than two values."""
    mean, sd = mean_sd(total, total_sq, n)
    if n < 2:
        return (mean, mean)
    half = float(sps.t.ppf(1 - ALPHA / 2, n - 1)) * sd / math.sqrt(n)
    return (mean - half, mean + half)


def welch_p(a: Arm, b: Arm) -> float | None:
    """Two-sided Welch t-test p-value on revenue per user; None without data."""
    if a.users < 2 or b.users < 2:
        return None
    m1, s1 = mean_sd(a.revenue, a.revenue_sq, a.users)
    m2, s2 = mean_sd(b.revenue, b.revenue_sq, b.users)
    if s1 == 0 and s2 == 0:
        return 1.0 if math.isclose(m1, m2) else 0.0
    result = sps.ttest_ind_from_stats(m1, s1, a.users, m2, s2, b.users, equal_var=False)
    return float(result.pvalue)


def srm_p(observed: list[int], shares: list[float]) -> float | None:
    """Chi-square goodness-of-fit p-value of users per group; None without users."""
    total = sum(observed)
    if total == 0 or len(observed) < 2:
        return None
    norm = sum(shares)
    expected = [total * s / norm for s in shares]
    return float(sps.chisquare(observed, expected).pvalue)


def metric_value(arm: Arm, metric: str) -> float:
    if metric == "ctr":
        return rate(arm.clicks, arm.impressions)
    if metric == "conversion_rate":
        return rate(arm.converters, arm.users)
    return rate(arm.revenue, arm.users)


def metric_p(a: Arm, b: Arm, metric: str) -> float | None:
    if metric == "ctr":
        return two_proportion_p(
            a.clicks, a.impressions, b.clicks, b.impressions, design_effect(a), design_effect(b)
        )
    if metric == "conversion_rate":
        return two_proportion_p(a.converters, a.users, b.converters, b.users)
    return welch_p(a, b)


def lift(control: float, other: float) -> float | None:
    return other / control - 1.0 if control > 0 else None


def _lift_text(value: float | None) -> str:
    return f"{value:+.1%}" if value is not None else "up from zero"


def _p_text(p: float) -> str:
    return "p<1e-12" if p < 1e-12 else f"p={p:.2g}"


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def describe_arm(arm: Arm, control: Arm | None, primary: str) -> dict[str, Any]:
    """One group's figures; against the control when given."""
    out: dict[str, Any] = {
        "name": arm.name,
        "users": arm.users,
        "impressions": arm.impressions,
        "clicks": arm.clicks,
        "ctr": _r(rate(arm.clicks, arm.impressions)),
        "ctr_ci": [_r(x) for x in wilson_ci(arm.clicks, arm.impressions, deff=design_effect(arm))],
        "ctr_design_effect": round(design_effect(arm), 4),
        "conversions": arm.converters,
        "conversion_rate": _r(rate(arm.converters, arm.users)),
        "conversion_rate_ci": [_r(x) for x in wilson_ci(arm.converters, arm.users)],
        "revenue": round(arm.revenue, 2),
        "revenue_per_user": _r(rate(arm.revenue, arm.users), 4),
        "revenue_per_user_ci": [_r(x, 4) for x in mean_ci(arm.revenue, arm.revenue_sq, arm.users)],
        "lift": None,
        "p_value": None,
    }
    if control is not None:
        for metric in METRICS:
            value = lift(metric_value(control, metric), metric_value(arm, metric))
            p = metric_p(control, arm, metric)
            if metric == primary:
                out["lift"], out["p_value"] = _r(value), _r(p, 8)
            out[f"{metric}_lift"], out[f"{metric}_p_value"] = _r(value), _r(p, 8)
    return out


def verdict(
    arms: list[Arm],
    described: list[dict[str, Any]],
    srm: float | None,
    primary: str,
    *,
    min_users: int = MIN_USERS,
    min_impressions: int = MIN_IMPRESSIONS,
) -> tuple[str, str | None]:
    """A sentence for the marketer and the winning variant (None unless one clearly wins).

    Comparisons against the control are Bonferroni-corrected, so an A/A test declares a
    winner at most ALPHA of the time.
    """
    if not arms or sum(a.users for a in arms) == 0:
        return "no data yet", None
    if srm is not None and srm < SRM_ALPHA:
        return (
            f"sample ratio mismatch ({_p_text(srm)}): users per group differ from the configured "
            "shares, so assignment or logging is broken; do not trust these results",
            None,
        )
    smallest = min(arms, key=lambda a: a.users)
    if smallest.users < min_users:
        return (
            f"sample too small: '{smallest.name}' has {smallest.users} users, at least "
            f"{min_users} per group are needed before declaring a winner",
            None,
        )
    if primary == "ctr":
        low = min(arms, key=lambda a: a.impressions)
        if low.impressions < min_impressions:
            return (
                f"sample too small: '{low.name}' has {low.impressions} impressions, at least "
                f"{min_impressions} per group are needed before declaring a winner",
                None,
            )
    others = described[1:]
    threshold = ALPHA / max(1, len(others))
    significant = [d for d in others if d["p_value"] is not None and d["p_value"] < threshold]
    label = primary.replace("_", " ")
    if not significant:
        return f"no significant difference in {label} against '{arms[0].name}'", None

    def gain(d: dict[str, Any]) -> float:
        return float("inf") if d["lift"] is None else float(d["lift"])  # from a zero control

    best = max(significant, key=gain)
    if gain(best) > 0:
        return (
            f"'{best['name']}' beats '{arms[0].name}' on {label}: "
            f"{_lift_text(best['lift'])} ({_p_text(best['p_value'])})",
            str(best["name"]),
        )
    worst = min(significant, key=gain)
    return (
        f"'{arms[0].name}' beats '{worst['name']}' on {label}: "
        f"'{worst['name']}' {_lift_text(worst['lift'])} ({_p_text(worst['p_value'])})",
        str(arms[0].name),
    )


def analyse(
    arms: list[Arm], shares: list[float], primary: str = "ctr", **limits: int
) -> dict[str, Any]:
    """Per-group figures, SRM and verdict; arms[0] is the control."""
    control = arms[0] if arms else None
    described = [describe_arm(a, control if i else None, primary) for i, a in enumerate(arms)]
    srm = srm_p([a.users for a in arms], shares)
    text, winner = verdict(arms, described, srm, primary, **limits)
    return {
        "variants": described,
        "srm_p_value": _r(srm, 8),
        "verdict": text,
        "winner": winner,
    }
