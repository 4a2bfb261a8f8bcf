"""The warehouse: atomic, column-order-safe slice replacement; ingested_at kept for unchanged bars; reads."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptotracker_assets.storage.warehouse import Warehouse, WarehouseError

D1 = pd.Timestamp("2026-02-01", tz="UTC")
DAY = pd.Timedelta(days=1)


def day_bars(day: pd.Timestamp, symbols=("BTC", "ETH"), n=5, price=100.0, ingested="2026-03-01") -> pd.DataFrame:
    rows = []
    for s in symbols:
        for i in range(n):
            p = price + i
            rows.append({"symbol": s, "timestamp": day + pd.Timedelta(minutes=i), "open": p, "high": p + 1,
                         "low": p - 1, "close": p + 0.5, "volume": 1.0 + i, "suspect": False,
                         "ingested_at": pd.Timestamp(ingested, tz="UTC")})
    df = pd.DataFrame(rows)
    df["timestamp"] = df["timestamp"].astype("datetime64[ns, UTC]")
    df["ingested_at"] = df["ingested_at"].astype("datetime64[ns, UTC]")
    return df


@pytest.fixture()
def wh(warehouse_location):
    return Warehouse(warehouse_location)  # DuckDB and PostgreSQL alike


def test_replace_is_exactly_the_slice(wh):
    for k in range(3):
        wh.replace_bars("1m", day_bars(D1 + k * DAY), D1 + k * DAY, D1 + (k + 1) * DAY, ["BTC", "ETH"])
    before = wh.read_bars("1m")
    new = day_bars(D1 + DAY, price=200.0, ingested="2026-03-02")
    res = wh.replace_bars("1m", new, D1 + DAY, D1 + 2 * DAY, ["BTC", "ETH"])
    after = wh.read_bars("1m")
    assert (res.deleted, res.inserted, res.unchanged) == (10, 10, 0)
    assert len(after) == 30 and wh.duplicate_keys("1m") == 0
    other = ~after["timestamp"].between(D1 + DAY, D1 + 2 * DAY, inclusive="left")
    pd.testing.assert_frame_equal(after[other].reset_index(drop=True),
                                  before[~before["timestamp"].between(D1 + DAY, D1 + 2 * DAY, inclusive="left")]
                                  .reset_index(drop=True))
    assert after[~other]["open"].min() == 200.0


def test_symbol_subset_slice_leaves_other_symbols(wh):
    wh.replace_bars("1m", day_bars(D1), D1, D1 + DAY, ["BTC", "ETH"])
    wh.replace_bars("1m", day_bars(D1, symbols=("ETH",), n=2, price=300.0), D1, D1 + DAY, ["ETH"])
    got = wh.read_bars("1m")
    assert got.groupby("symbol").size().to_dict() == {"BTC": 5, "ETH": 2}
    assert got[got.symbol == "BTC"]["open"].iloc[0] == 100.0


def test_failure_mid_replace_keeps_old_rows(wh):
    wh.replace_bars("1m", day_bars(D1), D1, D1 + DAY, ["BTC", "ETH"])
    before = wh.read_bars("1m")
    with pytest.raises(WarehouseError, match="injected failure after delete"):
        wh.replace_bars("1m", day_bars(D1, price=500.0), D1, D1 + DAY, ["BTC", "ETH"], _fail_after_delete=True)
    pd.testing.assert_frame_equal(wh.read_bars("1m"), before)
    bad = day_bars(D1, price=500.0)
    bad.loc[3, "open"] = None  # NOT NULL violation inside the insert
    with pytest.raises(Exception):
        wh.replace_bars("1m", bad, D1, D1 + DAY, ["BTC", "ETH"])
    pd.testing.assert_frame_equal(wh.read_bars("1m"), before)


def test_rows_outside_the_slice_are_refused(wh):
    with pytest.raises(WarehouseError, match=r"outside the slice"):
        wh.replace_bars("1m", day_bars(D1 + DAY), D1, D1 + DAY, ["BTC", "ETH"])
    with pytest.raises(WarehouseError, match=r"outside the slice"):
        wh.replace_bars("1m", day_bars(D1), D1, D1 + DAY, ["BTC"])


def test_insert_is_by_column_name(wh):
    df = day_bars(D1)
    shuffled = df[["volume", "close", "symbol", "ingested_at", "low", "timestamp", "suspect", "high", "open"]]
    wh.replace_bars("1m", shuffled, D1, D1 + DAY, ["BTC", "ETH"])
    pd.testing.assert_frame_equal(wh.read_bars("1m"), df.sort_values(["symbol", "timestamp"]).reset_index(drop=True))


def test_unchanged_bars_keep_ingested_at(wh):
    wh.replace_bars("1m", day_bars(D1, ingested="2026-03-01"), D1, D1 + DAY, ["BTC", "ETH"])
    again = day_bars(D1, ingested="2026-03-05")
    again.loc[(again.symbol == "ETH") & (again.timestamp == D1), "close"] = 100.7  # one bar revised
    res = wh.replace_bars("1m", again, D1, D1 + DAY, ["BTC", "ETH"])
    got = wh.read_bars("1m")
    assert res.unchanged == 9
    changed = got[(got.symbol == "ETH") & (got.timestamp == D1)]
    assert changed["ingested_at"].iloc[0] == pd.Timestamp("2026-03-05", tz="UTC")
    assert (got.drop(changed.index)["ingested_at"] == pd.Timestamp("2026-03-01", tz="UTC")).all()


def test_upsert_only_changes_what_differs(wh):
    wh.replace_bars("1m", day_bars(D1, n=3), D1, D1 + DAY, ["BTC", "ETH"])
    extra = day_bars(D1, symbols=("BTC",), n=5, ingested="2026-03-09")  # minutes 0-2 identical, 3-4 new
    assert wh.upsert_bars("1m", extra) == 2
    got = wh.read_bars("1m", symbols=["BTC"])
    assert got["ingested_at"].dt.day.tolist() == [1, 1, 1, 9, 9] and wh.duplicate_keys("1m") == 0


def test_reads_are_chronological_and_complete(wh):
    wh.replace_bars("1m", day_bars(D1, n=500).sample(frac=1, random_state=1), D1, D1 + DAY, ["BTC", "ETH"])
    got = wh.read_bars("1m", D1, D1 + DAY, ["ETH", "BTC"])
    assert len(got) == 1000
    assert got["symbol"].tolist() == ["BTC"] * 500 + ["ETH"] * 500
    assert got.groupby("symbol")["timestamp"].apply(lambda s: s.is_monotonic_increasing).all()
    assert str(got["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert wh.read_bars("1m", D1 + pd.Timedelta(minutes=498), D1 + DAY, ["BTC"])["timestamp"].tolist() == [
        D1 + pd.Timedelta(minutes=498), D1 + pd.Timedelta(minutes=499)]


def test_naive_timestamps_never_stored(wh):
    df = day_bars(D1)
    df["timestamp"] = df["timestamp"].dt.tz_localize(None)
    with pytest.raises(WarehouseError, match="naive"):
        wh.replace_bars("1m", df, D1, D1 + DAY, ["BTC", "ETH"])


def test_generic_slice_replace_creates_checks_columns_and_is_atomic(wh):
    def rows(day, value):
        return pd.DataFrame({"symbol": ["BTC", "ETH"], "timestamp": [day, day + pd.Timedelta(minutes=15)],
                             "rsi_14": [value, value + 1]}).astype({"timestamp": "datetime64[ns, UTC]"})

    wh.replace_slice("features_test", rows(D1, 50.0), "timestamp", D1, D1 + DAY)
    wh.replace_slice("features_test", rows(D1 + DAY, 60.0), "timestamp", D1 + DAY, D1 + 2 * DAY)
    res = wh.replace_slice("features_test", rows(D1, 70.0), "timestamp", D1, D1 + DAY)
    got = wh.read_slice("features_test", "timestamp", order_by=())
    assert res.deleted == 2 and got["rsi_14"].tolist() == [70.0, 71.0, 60.0, 61.0]
    # A new column is a forward migration: added to the table, NULL on the rows stored before it.
    wh.replace_slice("features_test", rows(D1, 70.0).assign(macd=1.5), "timestamp", D1, D1 + DAY)
    got = wh.read_slice("features_test", "timestamp", order_by=())
    assert got["macd"].tolist()[:2] == [1.5, 1.5] and got["macd"].iloc[2:].isna().all()
    with pytest.raises(WarehouseError, match=r"lack the stored column\(s\) \['macd'\]"):
        wh.replace_slice("features_test", rows(D1, 1.0), "timestamp", D1, D1 + DAY)
    with pytest.raises(WarehouseError, match="outside the slice"):
        wh.replace_slice("features_test", rows(D1 + DAY, 1.0), "timestamp", D1, D1 + DAY)
    assert wh.read_slice("features_test", "timestamp", order_by=())["rsi_14"].tolist() == [70.0, 71.0, 60.0, 61.0]
    assert wh.read_slice("missing_table", "timestamp") is None
