"""A/B variants of a step side by side: two-proportion z-tests and a plain verdict."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from engine.reports.sequences import StepStats

ALPHA, POWER = 0.05, 0.8


@dataclass(frozen=True)
class VariantComparison:
    """The variants of one step; the leader on reply rate against the runner-up."""

    sequence: str
    step: str
    variants: tuple[StepStats, ...]
    leader: str
    runner_up: str
    reply_p: float
    open_p: float
    more_sends: int | None
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "step": self.step,
            "variants": [v.as_dict() for v in self.variants],
            "leader": self.leader,
            "runner_up": self.runner_up,
            "reply_p": self.reply_p,
            "open_p": self.open_p,
            "more_sends": self.more_sends,
            "verdict": self.verdict,
        }


def two_proportion_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when it cannot tell)."""
    if not n_a or not n_b:
        return 1.0
    pooled = (hits_a + hits_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 1.0
    z = (hits_a / n_a - hits_b / n_b) / se
    return math.erfc(abs(z) / math.sqrt(2))


def sends_per_variant(
    p_a: float, p_b: float, alpha: float = ALPHA, power: float = POWER
) -> int | None:
    """Sends each variant needs to tell ``p_a`` from ``p_b`` (two-sided; None if equal)."""
    if p_a == p_b:
        return None
    z_alpha, z_power = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
    mean = (p_a + p_b) / 2
    spread = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_power * math.sqrt(
        p_a * (1 - p_a) + p_b * (1 - p_b)
    )
    return math.ceil(spread**2 / (p_a - p_b) ** 2)


def format_p(p: float) -> str:
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.2f}" if p >= 0.01 else f"p={p:.3f}"


def compare_variants(rows: Iterable[StepStats]) -> list[VariantComparison]:
    """A comparison for every step sent in more than one variant."""
    steps: dict[tuple[str, str], list[StepStats]] = {}
    for row in rows:
        if row.variant:
            steps.setdefault((row.sequence, row.step), []).append(row)
    return [
        _compare(sequence, step, tuple(sorted(group, key=lambda r: r.variant or "")))
        for (sequence, step), group in steps.items()
        if len(group) > 1
    ]


def _compare(sequence: str, step: str, variants: tuple[StepStats, ...]) -> VariantComparison:
    # the leader has the best reply rate; a tie goes to the variant named first
    ranked = sorted(variants, key=lambda v: -(v.rate("replied") or 0.0))
    a, b = ranked[0], ranked[1]
    reply_p = two_proportion_p(a.replied, a.sent, b.replied, b.sent)
    open_p = two_proportion_p(a.opened, a.sent, b.opened, b.sent)
    more, verdict = _verdict(a, b, reply_p)
    return VariantComparison(
        sequence, step, variants, a.variant or "", b.variant or "", reply_p, open_p, more, verdict
    )


def _verdict(a: StepStats, b: StepStats, p: float) -> tuple[int | None, str]:
    if p < ALPHA:
        return 0, f"{a.variant} leads, {format_p(p)}"
    needed = sends_per_variant(a.rate("replied") or 0.0, b.rate("replied") or 0.0)
    if needed is None:
        return None, "no winner yet: the reply rates are equal so far"
    more = max(0, needed - a.sent) + max(0, needed - b.sent)
    if more == 0:
        return 0, f"no winner yet ({format_p(p)}): the difference is too small to call"
    return more, f"no winner yet, about {more:,} more sends needed ({format_p(p)})"
