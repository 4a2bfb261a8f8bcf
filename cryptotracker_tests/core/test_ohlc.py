"""OHLC validation (rejects with reasons), suspect flags, aggregation and gap detection on hand-built bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptotracker_assets.core.ohlc import (
    OhlcInputError,
    aggregate_bars,
    completeness,
    detect_gaps,
    flag_suspect,
    validate_ohlc,
)

T0 = pd.Timestamp("2026-03-01 00:00", tz="UTC")


def bars(rows, symbol="BTC", start=T0, minutes=1):
    ts = [start + pd.Timedelta(minutes=minutes * i) for i in range(len(rows))]
    return pd.DataFrame(
        {"symbol": symbol, "timestamp": ts, "open": [r[0] for r in rows], "high": [r[1] for r in rows],
         "low": [r[2] for r in rows], "close": [r[3] for r in rows], "volume": [r[4] for r in rows]}
    )


GOOD = [(100, 101, 99, 100.5, 10), (100.5, 102, 100, 101, 5), (101, 101, 100.2, 100.4, 0)]


def test_good_rows_pass_untouched():
    v = validate_ohlc(bars(GOOD), "1m", partition="2026-03-01")
    assert v.rejects.empty
    assert v.clean[["open", "high", "low", "close", "volume"]].to_numpy().tolist() == [list(map(float, r)) for r in GOOD]
    assert str(v.clean["timestamp"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize(
    "row, field, reason",
    [
        ((100, 99, 101, 100, 1), "high", "high below max(open, close)"),  # high < low
        ((100, 101, 99, 100, -1), "volume", "volume must be >= 0"),
        ((100, 101, np.nan, 100, 1), "low", "NaN"),
        ((0, 101, 99, 100, 1), "open", "must be > 0"),
        ((100, 100.5, 100.2, 100, 1), "low", "low above min(open, close)"),
        ((100, 101, 99, "abc", 1), "close", "not a finite number"),
    ],
)
def test_broken_rows_go_to_rejects_with_reason(row, field, reason):
    df = bars(GOOD + [row])
    v = validate_ohlc(df, "1m", partition="2026-03-01")
    assert len(v.clean) == 3
    assert len(v.rejects) == 1
    r = v.rejects.iloc[0]
    assert (r["symbol"], r["field"], r["partition"], r["timeframe"]) == ("BTC", field, "2026-03-01", "1m")
    assert reason in r["reason"]
    assert r["timestamp"] == str(T0 + pd.Timedelta(minutes=3))


def test_duplicates_conflicting_rejected_identical_collapsed():
    df = bars(GOOD)
    conflicting = df.iloc[[1]].assign(close=100.9)
    identical = df.iloc[[2]]
    v = validate_ohlc(pd.concat([df, conflicting, identical], ignore_index=True), "1m", partition="p")
    # the two conflicting rows at minute 1 are both rejected; the identical copy of minute 2 is dropped
    assert v.clean["timestamp"].tolist() == [T0, T0 + pd.Timedelta(minutes=2)]
    assert sorted(v.rejects["reason"].str.slice(0, 33)) == ["duplicate (symbol, timestamp) wit"] * 2 + [
        "duplicate (symbol, timestamp): id"]


def test_naive_and_misaligned_timestamps_rejected():
    naive = bars(GOOD)
    naive["timestamp"] = naive["timestamp"].dt.tz_localize(None)
    v = validate_ohlc(naive, "1m", partition="p")
    assert v.clean.empty and (v.rejects["field"] == "timestamp").all()
    assert v.rejects["reason"].str.contains("naive").all()

    mis = bars(GOOD)
    mis.loc[1, "timestamp"] = T0 + pd.Timedelta(seconds=90)
    v = validate_ohlc(mis, "1m", partition="p")
    assert len(v.clean) == 2 and v.rejects.iloc[0]["reason"] == "timestamp not aligned to the 1m grid"

    v15 = validate_ohlc(bars(GOOD), "15m", partition="p")  # minutes 1 and 2 are off the 15m grid
    assert len(v15.clean) == 1 and len(v15.rejects) == 2


def test_object_timestamps_mixed_and_other_timezones():
    df = bars(GOOD).astype({"timestamp": object})
    df.loc[0, "timestamp"] = "2026-03-01T01:00:00+01:00"  # = 00:00 UTC, tz-aware: converted
    df.loc[1, "timestamp"] = "2026-03-01T00:01:00"  # naive: rejected
    df.loc[2, "timestamp"] = "not a time"
    v = validate_ohlc(df, "1m", partition="p")
    assert v.clean["timestamp"].tolist() == [T0]
    assert sorted(v.rejects["reason"].str.split(" ").str[0]) == ["naive", "unparsable"]


def test_missing_column_is_a_clear_error():
    with pytest.raises(OhlcInputError, match=r"partition 2026-03-01 \(1m\): missing column\(s\) \['volume'\]"):
        validate_ohlc(bars(GOOD).drop(columns="volume"), "1m", partition="2026-03-01")


def test_suspect_flags_consecutive_moves_above_half():
    rows = [(100, 100, 100, 100, 1), (100, 151, 100, 150.1, 1), (150, 150, 70, 75, 1), (75, 76, 74, 75, 1)]
    df = bars(rows)
    # 150.1/100 − 1 = 0.501 > 0.5; 75/150.1 − 1 = −0.5003 → |.| > 0.5; 75/75 − 1 = 0
    assert flag_suspect(df, 0.5).tolist() == [False, True, True, False]
    # the previous stored close seeds the first bar: 100 / 50 − 1 = 1.0
    assert flag_suspect(df, 0.5, {"BTC": 50.0}).tolist() == [True, True, True, False]
    exactly_half = bars([(100, 100, 100, 100, 1), (100, 150, 100, 150, 1)])
    assert flag_suspect(exactly_half, 0.5).tolist() == [False, False]  # strictly greater


def test_aggregate_hand_computed():
    rows = [(10, 12, 9, 11, 1), (11, 13, 10, 12, 2), (12, 12, 8, 9, 3), (9, 10, 9, 10, 4)]
    df = bars(rows, minutes=5)  # 00:00, 00:05, 00:10 → 15m bar 00:00; 00:15 → bar 00:15
    agg = aggregate_bars(df, "15m")
    assert agg[["open", "high", "low", "close", "volume"]].to_numpy().tolist() == [[10, 13, 8, 9, 6], [9, 10, 9, 10, 4]]
    closed = aggregate_bars(df, "15m", closed_by=T0 + pd.Timedelta(minutes=29))
    assert len(closed) == 1  # the 00:15 bar ends at 00:30


def test_gaps_and_completeness():
    ts = [0, 1, 2, 9, 10, 30]
    df = pd.DataFrame({"symbol": "ETH", "timestamp": [T0 + pd.Timedelta(minutes=m) for m in ts]})
    gaps = detect_gaps(df, "1m", interval_multiple=5)
    # 2 → 9 is 7 intervals (> 5): missing 6 (03..08); 10 → 30 is 20 intervals: missing 19
    assert gaps[["missing"]].to_numpy().ravel().tolist() == [6, 19]
    assert gaps["gap_start"].tolist() == [T0 + pd.Timedelta(minutes=3), T0 + pd.Timedelta(minutes=11)]
    assert detect_gaps(df[df.index < 3], "1m", 5).empty
    comp = completeness(df, "1m", T0, T0 + pd.Timedelta(minutes=60), ["ETH", "BTC"])
    assert comp["stored"].tolist() == [6, 0] and comp["completeness"].tolist() == [0.1, 0.0]
