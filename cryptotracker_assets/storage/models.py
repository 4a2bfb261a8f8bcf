"""The model tables (SPEC §11): ``model_registry`` — the champion pointer per strategy with the history of every swap
(append-only: the champion at time t is the newest swap before t, so a replay uses the model that was in force) —,
``model_metrics`` (one row per trained model × evaluated part) and ``training_labels`` (append-only, never pruned).
The model files themselves live in the model store folder (``core.ml.store``), never here. Never imports dagster."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .base import query_df, scalar, table_exists
from .tables import append_keyed

REGISTRY_TABLE = "model_registry"
METRICS_TABLE = "model_metrics"
LABELS_TABLE = "training_labels"

REGISTRY_DDL = """
CREATE TABLE IF NOT EXISTS model_registry (
    swap_id             BIGINT      PRIMARY KEY,
    strategy            VARCHAR     NOT NULL,
    model_version       VARCHAR,
    feature_set_version VARCHAR,
    content_hash        VARCHAR,
    composite           DOUBLE PRECISION,
    kind                VARCHAR     NOT NULL,
    who                 VARCHAR     NOT NULL,
    why                 VARCHAR     NOT NULL,
    swapped_at          TIMESTAMPTZ NOT NULL
)
"""


def create_model_tables(con) -> None:
    con.execute(REGISTRY_DDL)


@dataclass(frozen=True)
class Swap:
    """One pointer change: ``kind`` promote / rollback (a model becomes champion) or retire (no champion)."""

    strategy: str
    model_version: str | None
    feature_set_version: str | None
    content_hash: str | None
    composite: float | None
    kind: str
    who: str
    why: str
    swapped_at: pd.Timestamp


class ModelTablesMixin:
    """Registry, metrics and label reads and writes of :class:`~.warehouse.Warehouse`."""

    def record_swap(self, swap: Swap, expected_current: str | None = None, *, check: bool = False) -> int:
        """Append a swap in ONE transaction; with ``check``, refuse (``ValueError``) when the strategy's current
        champion is no longer ``expected_current`` (another process swapped first). Returns the swap id."""
        with self.transaction() as con:
            if check:
                cur = _current(con, swap.strategy)
                now = None if cur is None else cur["model_version"]
                if now != expected_current:
                    raise ValueError(f"model_registry: the {swap.strategy} champion is {now}, not {expected_current} "
                                     f"(another swap came first)")
            sid = int(scalar(con, "SELECT coalesce(max(swap_id), 0) FROM model_registry")) + 1
            con.execute("INSERT INTO model_registry VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [sid, swap.strategy, swap.model_version, swap.feature_set_version, swap.content_hash,
                         swap.composite, swap.kind, swap.who, swap.why, swap.swapped_at.to_pydatetime()])
        return sid

    def champion(self, strategy: str, at: pd.Timestamp | None = None, *, con=None) -> dict | None:
        """The strategy's newest swap (before ``at`` if given): its model is the champion unless it is a retire
        (``model_version`` null). None before any swap."""
        def read(c) -> dict | None:
            return _current(c, strategy, at)

        if con is not None:
            return read(con)
        with self.connect(read_only=True) as c:
            return read(c)

    def model_swaps(self, *, con=None) -> pd.DataFrame:
        return self.query("SELECT * FROM model_registry ORDER BY swap_id", con=con)

    def append_model_metrics(self, df: pd.DataFrame) -> int:
        """Metrics of one trained model (keyed by model_version × part; the same rows again are a no-op)."""
        if df is None or df.empty:
            return 0
        with self.transaction() as con:
            return append_keyed(con, METRICS_TABLE, df, ("model_version", "part"))

    def model_metrics(self, model_version: str | None = None, *, con=None) -> pd.DataFrame | None:
        def read(c) -> pd.DataFrame | None:
            if not table_exists(c, METRICS_TABLE):
                return None
            if model_version is None:
                return query_df(c, f"SELECT * FROM {METRICS_TABLE} ORDER BY model_version, part")
            return query_df(c, f"SELECT * FROM {METRICS_TABLE} WHERE model_version = ? ORDER BY part",
                            [model_version])

        if con is not None:
            return read(con)
        with self.connect(read_only=True) as c:
            return read(c)

    def append_labels(self, df: pd.DataFrame) -> int:
        """Append label rows, keyed by ``label_id`` (append-only, never pruned: a stored label is never changed —
        another value under a stored id raises)."""
        if df is None or df.empty:
            return 0
        with self.transaction() as con:
            return append_keyed(con, LABELS_TABLE, df, ("label_id",))

    def labels(self, strategy: str | None = None, *, con=None) -> pd.DataFrame | None:
        def read(c) -> pd.DataFrame | None:
            if not table_exists(c, LABELS_TABLE):
                return None
            if strategy is None:
                return query_df(c, f"SELECT * FROM {LABELS_TABLE} ORDER BY setup_time, label_id")
            return query_df(c, f"SELECT * FROM {LABELS_TABLE} WHERE strategy = ? ORDER BY setup_time, label_id",
                            [strategy])

        if con is not None:
            return read(con)
        with self.connect(read_only=True) as c:
            return read(c)


def _current(con, strategy: str, at: pd.Timestamp | None = None) -> dict | None:
    cond, params = "strategy = ?", [strategy]
    if at is not None:
        cond += " AND swapped_at < ?"
        params.append(at.to_pydatetime())
    rows = query_df(con, f"SELECT * FROM model_registry WHERE {cond} ORDER BY swap_id DESC LIMIT 1", params)
    return None if rows.empty else rows.iloc[0].to_dict()
