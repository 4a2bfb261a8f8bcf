from __future__ import annotations

import pytest

from cryptotracker_assets.core.config import Tier
from cryptotracker_assets.core.universe import Universe, UnknownSymbolError


def test_universe_table(cfg):
    u = Universe.from_config(cfg)
    df = u.to_frame()
    assert len(df) == 99 and df["symbol"].is_unique
    assert int(df["active"].sum()) == 97
    assert set(df.loc[~df["active"], "symbol"]) == {"ACT", "BRETT"}
    assert df.groupby("tier").size().to_dict() == {"large_cap": 6, "mid_cap": 67, "small_cap": 6, "memecoin": 20}
    assert df.set_index("symbol").loc["SOL", "polygon_ticker"] == "X:SOLUSD"


def test_tier_is_the_only_mapping(cfg):
    u = Universe.from_config(cfg)
    assert u.tier("DOGE") is Tier.SMALL_CAP and u.tier("SHIB") is Tier.SMALL_CAP
    assert u.tier("PEPE") is Tier.MEMECOIN and u.tier("MATIC") is Tier.MID_CAP
    with pytest.raises(UnknownSymbolError, match="unknown symbol 'POL'"):
        u.tier("POL")
    with pytest.raises(UnknownSymbolError):
        u.check(["BTC", "NOPE"])
