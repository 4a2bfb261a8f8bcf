"""Shadow testing (SPEC §10), plain Python; never imports dagster.

- :mod:`.variations`: the §10.1 variations as data (setups re-evaluated from stored features, thresholds, exit rules,
  sizes).
- :mod:`.book`: shadow decisions, orders and positions inside the engine fold (the engine steps shadows as it steps
  real positions), their decision and exit rows.
- :mod:`.outcomes`: the derived outcome of every shadow (decision ⋈ exit ⋈ the real trade of its scan).
- :mod:`.stats`, :mod:`.analyzer`, :mod:`.recommend`: the analyzer (§10.3), recommendations (§10.4) and the
  threshold manager's step and safety gates (§10.5).
"""

from .book import (DECISION_COLUMNS, EXIT_COLUMNS, SKIP_REASONS, ShadowBook, ShadowMeta, ShadowOrder, ShadowState,
                   decision_frame, exit_frame, shadow_outcome)
from .variations import CHAMPION, REPORT_ONLY, Variation, applicable, number_name, variations

__all__ = [
    "CHAMPION",
    "DECISION_COLUMNS",
    "EXIT_COLUMNS",
    "REPORT_ONLY",
    "SKIP_REASONS",
    "ShadowBook",
    "ShadowMeta",
    "ShadowOrder",
    "ShadowState",
    "Variation",
    "applicable",
    "decision_frame",
    "exit_frame",
    "number_name",
    "shadow_outcome",
    "variations",
]
