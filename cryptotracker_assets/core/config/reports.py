"""What the config check reports but never rejects: the trail-lock report (SPEC §0.5, §5.1)."""

from __future__ import annotations

from typing import Any

from .enums import Strategy, Tier
from .model import Config


def trail_lock_report(cfg: Config) -> list[dict[str, Any]]:
    """SPEC §0.5/§5.1 report: strategy × tier cells whose trail at arming locks a net loss.

    A trailing exit right at arming returns (1 + trail_activation)(1 − trail) × A; the cell is listed when that
    is below 1 + round trip. Reported, never an error.
    """
    rows = []
    for strategy in Strategy:
        for tier in Tier:
            p = cfg.exits.params(strategy, tier)
            at_arming = (1.0 + p.trail_activation) * (1.0 - p.trail)
            needed = 1.0 + cfg.costs.round_trip(tier)
            if at_arming < needed:
                rows.append(
                    {
                        "strategy": strategy.value,
                        "tier": tier.value,
                        "trail": p.trail,
                        "trail_activation": p.trail_activation,
                        "gross_at_arming": at_arming - 1.0,
                        "round_trip": cfg.costs.round_trip(tier),
                        "net_at_arming": at_arming - needed,
                    }
                )
    return rows


def format_trail_lock_report(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No strategy × tier locks a net loss when its trail fires at arming."
    lines = [
        "Trails that lock a net loss when they fire right at arming (reported, not an error; SPEC §5.1):",
        "| strategy | tier | trail | activation | gross at arming | round trip | net at arming |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {r['tier']} | {r['trail'] * 100:.2f} % | {r['trail_activation'] * 100:.2f} % | "
            f"{r['gross_at_arming'] * 100:+.2f} % | {r['round_trip'] * 100:.2f} % | {r['net_at_arming'] * 100:+.2f} % |"
        )
    return "\n".join(lines)
