"""Polygon through the real polygon-api-client against a fake server on 127.0.0.1 (real wire format)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cryptotracker_tests.fakes.polygon import FakePolygon, fixture_bars
from resources.sources import MarketDataError, PolygonBarsClient, RateLimiter

KEY = "pk_test_SECRET_0123456789"
DAY = pd.Timestamp("2024-01-01", tz="UTC")


def minute_bars(n: int, start=DAY) -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    c = 100 + np.arange(n, dtype=float)
    return pd.DataFrame({"timestamp": ts, "open": c, "high": c + 1, "low": c - 1, "close": c + 0.5, "volume": 1.0})


def client(fake: FakePolygon, **kw) -> PolygonBarsClient:
    sleeps: list[float] = []
    c = PolygonBarsClient(api_key=KEY, base_url=fake.base_url, sleep=sleeps.append, jitter=lambda d: 0.0,
                          min_call_interval_s=0.0, **kw)
    c.sleeps = sleeps  # type: ignore[attr-defined]
    return c


def test_fixture_pages_verbatim_follow_next_url_on_the_fake_base(fixtures_dir):
    pages = [json.loads((fixtures_dir / f"polygon_aggs_page{i}.json").read_text()) for i in (1, 2)]
    with FakePolygon(raw_pages=pages) as fake:
        df = client(fake).fetch("BTC", "X:BTCUSD", "1m", DAY, DAY + pd.Timedelta(days=1))
    expected = fixture_bars(fixtures_dir)
    assert df["timestamp"].tolist() == expected["timestamp"].tolist()
    assert df["close"].tolist() == [42030.5, 42020.0, 42015.3]
    assert [r["path"] for r in fake.requests] == [
        "/v2/aggs/ticker/X:BTCUSD/range/1/minute/1704067200000/1704153599999",
        "/v2/aggs/ticker/X:BTCUSD/range/1/minute/1704067320000/2024-01-01",
    ]
    assert fake.requests[0]["query"]["limit"] == ["50000"] and fake.requests[0]["query"]["sort"] == ["asc"]
    assert fake.requests[1]["query"] == {"cursor": ["bGltaXQ9Mg"]}
    assert all(r["auth"] == f"Bearer {KEY}" for r in fake.requests)


def test_pagination_to_the_end_and_timeframes():
    bars = minute_bars(7)
    with FakePolygon({"X:ETHUSD": bars}, page_size=3) as fake:
        df = client(fake).fetch("ETH", "X:ETHUSD", "1m", DAY, DAY + pd.Timedelta(days=1))
        assert len(fake.requests) == 3  # 3 + 3 + 1
        assert df["open"].tolist() == bars["open"].tolist() and (df["symbol"] == "ETH").all()
        client(fake).fetch("ETH", "X:ETHUSD", "15m", DAY, DAY + pd.Timedelta(days=1))
        client(fake).fetch("ETH", "X:ETHUSD", "1h", DAY, DAY + pd.Timedelta(days=1))
        client(fake).fetch("ETH", "X:ETHUSD", "1d", DAY, DAY + pd.Timedelta(days=1))
    spans = list(dict.fromkeys(tuple(r["path"].split("/")[6:8]) for r in fake.requests[3:]))
    assert spans == [("15", "minute"), ("1", "hour"), ("1", "day")]


def test_429_then_success_retries_with_backoff():
    with FakePolygon({"X:BTCUSD": minute_bars(3)}, script={1: 429, 2: 503}) as fake:
        c = client(fake)
        df = c.fetch("BTC", "X:BTCUSD", "1m", DAY, DAY + pd.Timedelta(days=1))
    assert len(df) == 3
    assert c.sleeps == [0.1, 0.5]  # data.ingest.retry_delays_s[0..1] (+ jitter, zero here)


def test_a_long_retry_after_is_capped_and_the_fetch_fails_within_the_retry_budget():
    # A Retry-After of an hour would block one symbol for hours; each wait is capped by
    # data.polygon.max_retry_after_s and the fetch fails after `retries`.
    with FakePolygon(fail_always=429, retry_after="3600") as fake:
        c = client(fake, retries=2, retry_delays_s=(0.1, 0.5), max_retry_after_s=7.0)
        with pytest.raises(MarketDataError, match="after 2 retries"):
            c.fetch("BTC", "X:BTCUSD", "1m", DAY, DAY + pd.Timedelta(days=1))
    assert c.sleeps == [7.0, 7.0] and len(fake.requests) == 3


def test_500_forever_fails_after_the_retry_budget_and_never_shows_the_key():
    with FakePolygon(fail_always=500) as fake:
        c = client(fake, retries=3, retry_delays_s=(0.1, 0.2, 0.4))
        with pytest.raises(MarketDataError) as err:
            c.fetch("SOL", "X:SOLUSD", "1m", DAY, DAY + pd.Timedelta(days=1))
    assert len(fake.requests) == 4  # first try + 3 retries
    msg = str(err.value)
    assert "SOL" in msg and "X:SOLUSD" in msg and "HTTP 500 on page 1 after 3 retries" in msg
    assert KEY not in msg and KEY not in repr(c)


def test_unknown_symbol_is_empty_not_an_error():
    with FakePolygon({}) as fake:
        df = client(fake).fetch("NEWCOIN", "X:NEWCOINUSD", "1m", DAY, DAY + pd.Timedelta(days=1))
    assert df.empty and list(df.columns)[:2] == ["symbol", "timestamp"]


def test_error_body_and_auth_failure_are_clear():
    with FakePolygon(error_body={"status": "ERROR", "error": "Unknown API Key"}) as fake:
        with pytest.raises(MarketDataError, match="Unknown API Key"):
            client(fake).fetch("BTC", "X:BTCUSD", "1m", DAY, DAY + pd.Timedelta(days=1))
        assert len(fake.requests) == 1  # not retried
    with FakePolygon(fail_always=403) as fake:
        with pytest.raises(MarketDataError, match="HTTP 403") as err:
            client(fake).fetch("BTC", "X:BTCUSD", "1m", DAY, DAY + pd.Timedelta(days=1))
    assert KEY not in str(err.value)


def test_rate_limiter_spacing_and_per_minute_cap():
    now = [0.0]
    slept = []

    def sleep(d):
        slept.append(round(d, 6))
        now[0] += d

    rl = RateLimiter(min_interval_s=0.1, max_per_min=3, clock=lambda: now[0], sleep=sleep)
    fired = []
    for _ in range(4):
        rl.wait()
        fired.append(round(now[0], 6))
    # 0.1 s apart, and the 4th call waits until 60 s after the first
    assert fired == [0.0, 0.1, 0.2, 60.0]


def test_the_resource_repr_never_shows_the_key():
    from resources.market_data import PolygonMarketData

    res = PolygonMarketData(api_key=KEY)
    assert KEY not in repr(res) and KEY not in str(res) and "api_key='***'" in repr(res)
    assert res.api_key == KEY  # the value itself is intact


# --- 200 answers that are not whole pages (polygon-api-client would end pagination there) -----------------

FULL_DAY = minute_bars(1440)
END = DAY + pd.Timedelta(days=1)


@pytest.mark.parametrize("page, fault", [(1, "truncated"), (3, "truncated"), (1, "html"), (3, "html"),
                                         (2, "no_results_next"), (2, "empty_results_next"), (3, "short_read")])
def test_a_broken_page_fails_the_fetch_after_the_retry_budget_naming_the_page(page, fault):
    with FakePolygon({"X:BTCUSD": FULL_DAY}, page_size=480, faults={page: fault}) as fake:
        c = client(fake, retries=2, retry_delays_s=(0.1, 0.5))
        with pytest.raises(MarketDataError) as err:
            c.fetch("BTC", "X:BTCUSD", "1m", DAY, END)
    msg = str(err.value)
    assert "BTC" in msg and "X:BTCUSD" in msg and "1m" in msg and "2024-01-01" in msg
    assert "after 2 retries" in msg and KEY not in msg
    if fault != "short_read":  # a cut connection is a network error, the page number is not known to urllib3
        assert f"page {page}" in msg
    # every attempt re-fetched the range from page 1 up to the broken page: 3 attempts
    assert fake.faults_served[page] == 3 and c.sleeps == [0.1, 0.5]


@pytest.mark.parametrize("page, fault", [(1, "html"), (3, "truncated"), (2, "empty_results_next")])
def test_a_broken_page_once_is_retried_like_a_5xx_and_the_day_is_whole(page, fault):
    with FakePolygon({"X:BTCUSD": FULL_DAY}, page_size=480, faults={page: fault}, fault_times=1) as fake:
        c = client(fake)
        df = c.fetch("BTC", "X:BTCUSD", "1m", DAY, END)
    assert len(df) == 1440 and df["close"].tolist() == FULL_DAY["close"].tolist()
    assert c.sleeps == [0.1]  # one retry, data.ingest.retry_delays_s[0]


def test_a_day_without_trades_is_empty_not_an_error():
    # A last page with neither results nor next_url is a range without trades, not a broken page.
    with FakePolygon({"X:BTCUSD": FULL_DAY}, page_size=480) as fake:
        df = client(fake).fetch("BTC", "X:BTCUSD", "1m", DAY + pd.Timedelta(days=3), DAY + pd.Timedelta(days=4))
    assert df.empty
