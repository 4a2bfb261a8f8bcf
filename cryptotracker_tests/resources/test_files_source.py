"""The `files` source on the real candles of ../shared/data, and its bad-input errors."""

from __future__ import annotations

import pandas as pd
import pytest

from cryptotracker_assets.core.ohlc import aggregate_bars, validate_ohlc
from resources.sources import FilesBarsReader, MarketDataError


def test_reads_real_5m_pairs_and_aggregates(shared_data):
    folder = shared_data / "binance_altbtc_2018-01_5m"
    reader = FilesBarsReader(str(folder))
    start, end = pd.Timestamp("2018-01-16", tz="UTC"), pd.Timestamp("2018-01-17", tz="UTC")
    raw = pd.read_parquet(folder / "ETH-BTC.parquet")
    expected = raw[(raw["timestamp"] >= start) & (raw["timestamp"] < end)].reset_index(drop=True)
    df = reader.fetch("ETH-BTC", "5m", start, end)
    pd.testing.assert_frame_equal(df, expected[df.columns.tolist()], check_dtype=False)
    assert 280 <= len(df) <= 288 and str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    h1 = reader.fetch("ETH-BTC", "1h", start, end)
    pd.testing.assert_frame_equal(h1, aggregate_bars(expected, "1h"))
    assert validate_ohlc(df, "5m", partition="2018-01-16").rejects.empty
    with pytest.raises(MarketDataError, match="ETH-BTC has 5-minute bars; 1m cannot be built"):
        reader.fetch("ETH-BTC", "1m", start, end)


def test_missing_symbol_file_is_empty(shared_data):
    reader = FilesBarsReader(str(shared_data / "binance_altbtc_2018-01_5m"))
    assert reader.fetch("DOGE-BTC", "5m", pd.Timestamp("2018-01-16", tz="UTC"),
                        pd.Timestamp("2018-01-17", tz="UTC")).empty


def test_corrupt_parquet_names_file_and_symbol(tmp_path):
    (tmp_path / "ETH-BTC.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(MarketDataError, match=r"ETH-BTC\.parquet \(symbol ETH-BTC\) is not a readable parquet file"):
        FilesBarsReader(str(tmp_path)).fetch("ETH-BTC", "5m", pd.Timestamp("2018-01-16", tz="UTC"),
                                            pd.Timestamp("2018-01-17", tz="UTC"))


def test_csv_and_missing_columns(tmp_path):
    ts = pd.date_range("2018-01-16", periods=3, freq="1min", tz="UTC")
    df = pd.DataFrame({"symbol": "ABC", "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": 1.0, "high": 1.0,
                       "low": 1.0, "close": 1.0, "volume": 2.0})
    df.to_csv(tmp_path / "ABC.csv", index=False)
    out = FilesBarsReader(str(tmp_path)).fetch("ABC", "1m", ts[0], ts[0] + pd.Timedelta(days=1))
    assert out["timestamp"].tolist() == list(ts)
    df.drop(columns="volume").to_csv(tmp_path / "XYZ.csv", index=False)
    with pytest.raises(MarketDataError, match=r"XYZ\.csv \(symbol XYZ\) lacks column\(s\) \['volume'\]"):
        FilesBarsReader(str(tmp_path)).fetch("XYZ", "1m", ts[0], ts[0] + pd.Timedelta(days=1))


def test_csv_prices_equal_the_file_text_exactly(tmp_path):
    # Decimal texts whose nearest double pandas' default (fast) parser misses in the last bits.
    texts = ["0.00012345678901234567", "43251.123456789012", "1.0000000000000002", "0.30000000000000004",
             "9.87654321098765e-05", "123456.78901234567"]
    ts = pd.date_range("2018-01-16", periods=len(texts), freq="1min", tz="UTC")
    lines = ["symbol,timestamp,open,high,low,close,volume"]
    lines += [f"ABC,{t:%Y-%m-%dT%H:%M:%SZ},{x},{x},{x},{x},{x}" for t, x in zip(ts, texts)]
    (tmp_path / "ABC.csv").write_text("\n".join(lines) + "\n")
    out = FilesBarsReader(str(tmp_path)).fetch("ABC", "1m", ts[0], ts[0] + pd.Timedelta(days=1))
    expected = [float(x) for x in texts]  # Python's float() is correctly rounded: the independent reference
    for c in ("open", "high", "low", "close", "volume"):
        assert out[c].tolist() == expected, c
