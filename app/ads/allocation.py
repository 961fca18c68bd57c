"""Budget allocation across campaigns with diminishing returns.

Campaign c returns R_c(s) = A_c (1 - exp(-s / S_c)) for spend s, where S_c is what it costs
(at its cost per click) to show the ad once to each scored shopper, sum of p_click x CPC, and
A_c what that would return, sum of p_convert x conversion value. The first unit returns
A_c / S_c; each further unit returns less. The budget is split so every funded campaign ends
at the same marginal return (water-filling: s_c = S_c ln(A_c / (S_c lambda)), capped by the
campaign's own budget), which maximises the total expected return.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Curve:
    campaign_id: str
    reach_cost: float  # S
    reach_return: float  # A
    cost_per_click: float
    conversion_value: float
    cap: float | None = None


def _spend(c: Curve, lam: float) -> float:
    if c.reach_cost <= 0 or c.reach_return <= 0:
        return 0.0
    s = c.reach_cost * math.log(max(c.reach_return / (c.reach_cost * lam), 1.0))
    return min(s, c.cap) if c.cap is not None else s


def allocate(curves: list[Curve], budget: float) -> tuple[list[float], float]:
    """(spend per curve, marginal return lambda) spending `budget` or every cap."""
    live = [c for c in curves if c.reach_cost > 0 and c.reach_return > 0]
    if budget <= 0 or not live:
        return [0.0] * len(curves), 0.0
    top = max(c.reach_return / c.reach_cost for c in live)
    if all(c.cap is not None for c in live) and sum(c.cap or 0.0 for c in live) <= budget:
        return [_spend(c, 1e-12 * top) for c in curves], 0.0
    lo, hi = 1e-12 * top, top  # total spend is decreasing in lambda
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if sum(_spend(c, mid) for c in live) > budget:
            lo = mid
        else:
            hi = mid
    spend = [_spend(c, hi) for c in curves]
    return spend, hi


def returns(c: Curve, spend: float) -> tuple[float, float]:
    """(expected return, marginal return) at `spend`."""
    if c.reach_cost <= 0:
        return 0.0, 0.0
    decay = math.exp(-spend / c.reach_cost)
    return c.reach_return * (1 - decay), c.reach_return / c.reach_cost * decay


def explain(c: Curve, spend: float, budget: float, capped: bool) -> str:
    """One sentence a marketer can read."""
    first = c.reach_return / c.reach_cost if c.reach_cost > 0 else 0.0
    if c.reach_cost <= 0 or c.reach_return <= 0:
        return "no scored audience yet: nothing allocated"
    total, marginal = returns(c, spend)
    if spend <= 0:
        return (
            f"first unit returns {first:.2f}, less than the last unit elsewhere: nothing allocated"
        )
    text = (
        f"{spend / budget:.0%} of the budget: expected return {total:.2f} "
        f"({first:.2f} per unit at first, {marginal:.2f} for the last unit; "
        f"about {spend / c.cost_per_click:.0f} clicks at {c.cost_per_click:.2f} each)"
    )
    if capped:
        text += f"; limited by the campaign's own budget of {c.cap:.2f}"
    return text
