"""Per-day-partition completeness (SPEC §13.2) on hand-built bars: ratios, the longest missing range, the threshold at
its boundary, days of a range, a partition still filling."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptotracker_assets.core.completeness import missing_runs, partition_completeness

D0 = pd.Timestamp("2026-03-01", tz="UTC")
H = pd.Timedelta(hours=1)
M = pd.Timedelta(minutes=1)


def minute_bars(symbol: str, opens: list[pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, "timestamp": pd.DatetimeIndex(opens).as_unit("ns"), "open": 1.0,
                         "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})


def day_minutes(day: pd.Timestamp, skip=lambda t: False) -> list[pd.Timestamp]:
    return [t for t in pd.date_range(day, day + pd.Timedelta(days=1), freq="1min", inclusive="left") if not skip(t)]


def test_missing_runs():
    assert missing_runs(np.array([True, True])) == (0, -1, 0)
    # runs at 1..2 (2 bars) and 4..6 (3 bars, the longest); ties would go to the earlier
    assert missing_runs(np.array([1, 0, 0, 1, 0, 0, 0], dtype=bool)) == (2, 4, 3)
    assert missing_runs(np.array([0, 1, 0], dtype=bool)) == (2, 0, 1)
    assert missing_runs(np.zeros(4, dtype=bool)) == (1, 0, 4)


def test_a_day_missing_its_tail_is_incomplete_and_names_the_range():
    # ETH lacks 20:00–24:00 (240 of 1440 bars); BTC is whole; SOL has nothing at all
    eth = minute_bars("ETH", day_minutes(D0, skip=lambda t: t >= D0 + 20 * H))
    btc = minute_bars("BTC", day_minutes(D0))
    out = partition_completeness(pd.concat([btc, eth], ignore_index=True), "1m", D0, D0 + 24 * H,
                                 ["BTC", "ETH", "SOL"], 0.95).set_index("symbol")
    assert out["partition"].tolist() == ["2026-03-01"] * 3
    assert out["expected"].tolist() == [1440] * 3
    assert out["stored"].tolist() == [1440, 1200, 0]
    assert out.loc["ETH", "completeness"] == 1200 / 1440 and out.loc["ETH", "missing_share"] == 240 / 1440
    assert out["incomplete"].tolist() == [False, True, True]
    assert out.loc["ETH", "missing_runs"] == 1
    assert (out.loc["ETH", "longest_missing_start"], out.loc["ETH", "longest_missing_end"]) == (D0 + 20 * H,
                                                                                                D0 + 24 * H)
    assert pd.isna(out.loc["BTC", "longest_missing_start"]) and out.loc["BTC", "missing_runs"] == 0
    assert (out.loc["SOL", "longest_missing_start"], out.loc["SOL", "longest_missing_end"]) == (D0, D0 + 24 * H)


def test_threshold_boundary_equal_passes_one_bar_less_fails():
    # 0.95 of 1440 = 1368 bars: exactly at the threshold passes, one bar fewer is below it
    at = minute_bars("BTC", day_minutes(D0)[:1368])
    below = minute_bars("ETH", day_minutes(D0)[:1367])
    out = partition_completeness(pd.concat([at, below]), "1m", D0, D0 + 24 * H, ["BTC", "ETH"], 0.95)
    assert out["completeness"].tolist() == [1368 / 1440, 1367 / 1440]
    assert out["incomplete"].tolist() == [False, True]


def test_range_is_split_by_day_and_off_grid_or_outside_bars_are_not_counted():
    # 1h bars over two days: day 1 whole, day 2 missing 03:00 and 10:00–12:00 (the longest run)
    d1 = list(pd.date_range(D0, periods=24, freq="1h"))
    d2 = [t for t in pd.date_range(D0 + 24 * H, periods=24, freq="1h")
          if t.hour not in (3, 10, 11)]
    extra = [D0 - H, D0 + 48 * H, D0 + 30 * M]  # before, after, not on the 1h grid
    out = partition_completeness(minute_bars("BTC", d1 + d2 + extra), "1h", D0, D0 + 48 * H, ["BTC"], 0.99)
    assert out["partition"].tolist() == ["2026-03-01", "2026-03-02"]
    assert out["stored"].tolist() == [24, 21] and out["expected"].tolist() == [24, 24]
    assert out["incomplete"].tolist() == [False, True]
    day2 = out.iloc[1]
    assert day2["missing_runs"] == 2
    assert (day2["longest_missing_start"], day2["longest_missing_end"]) == (D0 + 34 * H, D0 + 36 * H)


def test_a_partition_still_filling_expects_only_its_closed_bars():
    # bars closed by 06:00 only: 360 expected, all stored → complete; nothing expected → no row
    bars = minute_bars("BTC", day_minutes(D0)[:360])
    out = partition_completeness(bars, "1m", D0, D0 + 6 * H, ["BTC"], 0.95)
    assert out[["expected", "stored", "incomplete"]].values.tolist() == [[360, 360, False]]
    assert partition_completeness(bars, "1m", D0, D0, ["BTC"], 0.95).empty
