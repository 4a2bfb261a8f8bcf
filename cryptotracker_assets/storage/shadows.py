"""The shadow tables' reads and retention (SPEC §10.2, §13.1): ``shadow_outcomes`` (the decision rows the engine tick
writes at their cycle point) and ``shadow_exits`` (one row per take when it closes or its order expires). Both are
appended by the tick's commit (:mod:`.engine`); the outcome is derived from the two
(:func:`~..core.shadows.outcomes.derive_outcomes`). ``shadow_performance`` keeps every analysis. Never imports
dagster."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .base import query_df, scalar, slice_where, table_exists
from .engine import LEDGER_TABLE, SHADOW_EXITS_TABLE, SHADOW_OUTCOMES_TABLE
from .tables import append_keyed

PERFORMANCE_TABLE = "shadow_performance"  # the analyzer's results, one analysis per materialization, history kept


@dataclass(frozen=True)
class ShadowRows:
    """The stored rows behind the shadows decided in a time range: their decision rows, the exit rows of those
    decisions and the SELL rows of the real trades their scans became."""

    decisions: pd.DataFrame | None
    exits: pd.DataFrame | None
    real_sells: pd.DataFrame | None


class ShadowTablesMixin:
    """Shadow reads and retention of :class:`~.warehouse.Warehouse`."""

    def shadow_rows(self, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None, *,
                    con=None) -> ShadowRows:
        """The shadows decided in [start, end) (decision order: T, scan_id, then variation as written), with their
        exits and the real trades of their scans; None parts before the tables exist."""
        where, params = slice_where("timestamp", start, end)

        def read(c) -> ShadowRows:
            if not table_exists(c, SHADOW_OUTCOMES_TABLE):
                return ShadowRows(None, None, None)
            d = query_df(c, f"SELECT * FROM {SHADOW_OUTCOMES_TABLE} WHERE {where} ORDER BY timestamp, shadow_id",
                         params)
            ex = None
            if table_exists(c, SHADOW_EXITS_TABLE):
                ex = query_df(c, f"SELECT e.* FROM {SHADOW_EXITS_TABLE} e WHERE e.shadow_id IN "
                                 f"(SELECT shadow_id FROM {SHADOW_OUTCOMES_TABLE} WHERE {where}) ORDER BY e.shadow_id",
                              params)
            real = None
            if table_exists(c, LEDGER_TABLE):
                real = query_df(c, f"SELECT scan_id, pnl_usd, pnl_pct FROM {LEDGER_TABLE} WHERE side = 'SELL' AND "
                                   f"scan_id IN (SELECT scan_id FROM {SHADOW_OUTCOMES_TABLE} WHERE {where} AND "
                                   f"production_take)", params)
            return ShadowRows(d, ex, real)

        if con is not None:
            return read(con)
        with self.connect(read_only=True) as c:
            return read(c)

    def delete_shadows_before(self, cutoff: pd.Timestamp) -> int:
        """Retention of the shadow tables: delete decision rows older than ``cutoff`` except takes still PENDING (no
        exit row) or whose exit is not older than ``cutoff``; delete exit rows closed before ``cutoff`` (their
        decisions go with them). Returns the rows deleted."""
        at = cutoff.to_pydatetime()
        with self.transaction() as con:
            if not table_exists(con, SHADOW_OUTCOMES_TABLE):
                return 0
            has_exits = table_exists(con, SHADOW_EXITS_TABLE)
            kept = (f"opened AND NOT EXISTS (SELECT 1 FROM {SHADOW_EXITS_TABLE} e WHERE e.shadow_id = d.shadow_id "
                    f"AND e.closed_at < ?)") if has_exits else "opened"
            cond = f"d.timestamp < ? AND NOT ({kept})"
            params = [at, at] if has_exits else [at]
            n = int(scalar(con, f"SELECT count(*) FROM {SHADOW_OUTCOMES_TABLE} d WHERE {cond}", params))
            con.execute(f"DELETE FROM {SHADOW_OUTCOMES_TABLE} d WHERE {cond}", params)
            if has_exits:
                n += int(scalar(con, f"SELECT count(*) FROM {SHADOW_EXITS_TABLE} WHERE closed_at < ?", [at]))
                con.execute(f"DELETE FROM {SHADOW_EXITS_TABLE} WHERE closed_at < ?", [at])
        return n

    # --- shadow_performance (the analyzer's history) --------------------------------------------------------------

    def append_performance(self, df: pd.DataFrame) -> int:
        """Append one analysis (rows of one ``analyzed_at``); idempotent on (analyzed_at, window_h, strategy,
        variation): the same analysis again is a no-op, another result under a stored key raises."""
        if df is None or df.empty:
            return 0
        with self.transaction() as con:
            return append_keyed(con, PERFORMANCE_TABLE, df, ("analyzed_at", "window_h", "strategy", "variation"),
                                prune="analyzed_at")

    def performance(self, at: pd.Timestamp | None = None, *, con=None) -> pd.DataFrame | None:
        """The latest analysis (at or before ``at`` if given); None before the first one."""
        def read(c) -> pd.DataFrame | None:
            if not table_exists(c, PERFORMANCE_TABLE):
                return None
            cond, params = ("WHERE analyzed_at <= ?", [at.to_pydatetime()]) if at is not None else ("", [])
            latest = scalar(c, f"SELECT max(analyzed_at) FROM {PERFORMANCE_TABLE} {cond}", params)
            if latest is None:
                return None
            return query_df(c, f"SELECT * FROM {PERFORMANCE_TABLE} WHERE analyzed_at = ? "
                               f"ORDER BY window_h, strategy, variation", [latest])

        if con is not None:
            return read(con)
        with self.connect(read_only=True) as c:
            return read(c)
