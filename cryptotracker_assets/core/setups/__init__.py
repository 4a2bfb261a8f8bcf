"""Strategy setups, scan decisions (steps 1–3 of SPEC §3.4), confidence and readiness (SPEC §3); never imports dagster.

At every cycle point T (UTC multiple of ``engine.cycle_min``) and for every active symbol × strategy:

1. **data** — ``stale_data`` (decision bar stale or regime UNKNOWN), ``insufficient_history`` (a setup window has
   less than ``engine.min_window_coverage`` of its bars), ``data_suspect`` (a ``suspect`` bar, SPEC §13.2, as the
   decision bar c or in a setup window);
2. **setup** (§3.2) — ``no_setup`` or, for CHANNEL, ``top_of_range``;
3. **confidence** (§3.3) — ``ml_below_threshold`` (NEAR_MISS inside the near-miss band, else SKIP).

Steps 1–3 always run (setup, confidence and readiness are filled wherever their inputs exist); the first failing step
gives the reason. A row that passes all three is a **candidate**: ``candidate = True`` with ``decision`` and
``reason`` null. Steps 4–6 (gates, priority, execution) belong to the paper engine, which resolves every candidate
with :func:`resolve_candidates` before it writes ``scan_history``; the ``scan_preview`` asset stores the rows as they
are here (same schema, candidates undecided), because no entry order exists to justify a TAKE.

Windows are time spans from the config converted to bars of ``engine.base_timeframe``; a window *including* c holds
the bars with open time in (c − W, c], a *reference* window *excluding* c holds [c − W, c) (SPEC §0.2). Thresholds
are fractions, readiness and its cut-offs 0–100, all times tz-aware UTC.

Modules: :mod:`.reasons` (the enums), :mod:`.rules` (parameters, detectors, readiness), :mod:`.confidence`,
:mod:`.columns` (row layouts), :mod:`.scan` (steps 1–3 over cycle points), :mod:`.board` (setups, the readiness
board, the engine's resolution of candidates). This package re-exports their public API.
"""

from __future__ import annotations

from .board import readiness_board, readiness_markdown, resolve_candidates, strategy_setups
from .columns import BOARD_COLUMNS, SCAN_ROW_COLUMNS, SETUP_COLUMNS, SETUP_NUMBERS
from .confidence import (
    RULE_SOURCE,
    ConfidenceArg,
    ConfidenceSource,
    ModelConfidence,
    RuleConfidence,
    confidence_source,
)
from .reasons import (
    ENGINE_STEP_REASONS,
    SCAN_STEP_REASONS,
    STATUSES,
    Decision,
    DecisionReason,
    ListType,
    ReadinessStatus,
)
from .rules import (
    SetupParams,
    channel_readiness,
    channel_setup,
    dca_readiness,
    dca_setup,
    readiness_cutoffs,
    readiness_status,
    setups_warmup,
    swing_readiness,
    swing_setup,
)
from .scan import (
    WINDOW_COLUMNS,
    ScanResult,
    data_reasons,
    decide,
    scan_cycle_points,
    scan_day,
    scan_features,
    scan_from_features,
)

__all__ = [
    "BOARD_COLUMNS", "ENGINE_STEP_REASONS", "RULE_SOURCE", "SCAN_ROW_COLUMNS", "SCAN_STEP_REASONS", "SETUP_COLUMNS",
    "SETUP_NUMBERS", "STATUSES", "WINDOW_COLUMNS", "ConfidenceArg", "ConfidenceSource", "Decision", "DecisionReason", "ListType",
    "ModelConfidence", "ReadinessStatus", "RuleConfidence", "ScanResult", "SetupParams", "channel_readiness",
    "channel_setup", "confidence_source", "data_reasons", "dca_readiness", "dca_setup", "decide", "readiness_board",
    "readiness_cutoffs", "readiness_markdown", "readiness_status", "resolve_candidates", "scan_cycle_points",
    "scan_day", "scan_features", "scan_from_features", "setups_warmup", "strategy_setups", "swing_readiness", "swing_setup",
]
