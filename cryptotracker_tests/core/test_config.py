"""The one config: schema, fail-fast errors naming the dotted key, user-file merge, SPEC §0.5 rules/reports."""

from __future__ import annotations

import copy

import pytest
import yaml

from cryptotracker_assets.core.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    Strategy,
    Tier,
    Timeframe,
    build_config,
    load_config,
    merge,
    raw_dict,
    trail_lock_report,
)
from cryptotracker_tests.conftest import PROJECT_ROOT, five_minute_base, write_user_config


def raw_defaults() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_default_file_is_spec_section_14(cfg):
    spec = (PROJECT_ROOT.parent / "shared" / "SPEC.md")
    if not spec.exists():
        pytest.skip("SPEC.md not beside the project")
    text = spec.read_text()
    block = text.split("## 14. Default config")[1].split("```yaml", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block) == raw_defaults()


def test_defaults_load_with_spec_values(cfg):
    assert cfg.strategies.dca.drop_threshold.of(Tier.MEMECOIN) == -0.04
    assert cfg.exits.params(Strategy.SWING, Tier.MID_CAP).trail_activation == 0.04
    assert cfg.costs.slippage.of("memecoin") == 0.0075
    assert cfg.data.ingest.of(Timeframe.M1).overlap_min == 10
    assert cfg.data.retention_d.of("1d") is None
    assert cfg.protection.volatility_disable.swing.reenable_at is None
    assert cfg.config_version == 0
    # round trip = 2 × fee + 2 × slippage (SPEC §6 table)
    assert cfg.costs.round_trip(Tier.LARGE_CAP) == pytest.approx(0.009)
    assert cfg.costs.round_trip(Tier.MEMECOIN) == pytest.approx(0.021)


def test_unknown_key_in_user_file_names_dotted_key(tmp_path):
    p = write_user_config(tmp_path, "strategies:\n  dca:\n    drop_treshold: {large_cap: -0.02}\n")
    with pytest.raises(ConfigError, match=r"`strategies\.dca\.drop_treshold`"):
        load_config(p)


def test_missing_key_names_dotted_key():
    d = raw_defaults()
    del d["exits"]["swing"]["memecoin"]["trail"]
    with pytest.raises(ConfigError, match=r"`exits\.swing\.memecoin\.trail`: missing key"):
        build_config(d)


def test_mistyped_values_fail():
    for path, bad in [(("engine", "cycle_min"), "5"), (("engine", "cycle_min"), 5.5),
                      (("strategies", "dca", "enabled"), "yes"), (("costs", "taker_fee"), True),
                      (("engine", "base_timeframe"), "2m")]:
        d = raw_defaults()
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = bad
        with pytest.raises(ConfigError, match="`" + ".".join(path).replace(".", r"\.") + "`"):
            build_config(d)


def test_user_file_merges_over_defaults(tmp_path):
    p = write_user_config(tmp_path, "strategies:\n  swing:\n    breakout_threshold: 0.02\n")
    cfg = load_config(p)
    assert cfg.strategies.swing.breakout_threshold == 0.02
    assert cfg.strategies.swing.min_volume_surge == 1.3  # untouched default
    assert cfg.strategies.dca.lookback_min == 20


def test_merge_rejects_unknown_and_replaces_lists():
    base = {"a": {"b": 1, "c": [1, 2]}}
    assert merge(base, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}}
    with pytest.raises(ConfigError, match="`a.x`"):
        merge(base, {"a": {"x": 1}})


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda d: d["portfolio"]["allocation"].update(dca=0.5), "portfolio.allocation"),
        (lambda d: d["universe"]["mid_cap"].append("BTC"), "universe.mid_cap"),
        (lambda d: d["universe"].update(market_symbol="ACT"), "universe.market_symbol"),
        (lambda d: d["universe"].update(market_symbol="NOPE"), "universe.market_symbol"),
        (lambda d: d["engine"].update(cycle_min=7), "engine.cycle_min"),
        (lambda d: d["exits"]["dca"]["large_cap"].update(trail=0.07), "exits.dca.large_cap.trail"),
        (lambda d: d["exits"]["dca"]["large_cap"].update(stop_loss=0.6), "exits.dca.large_cap.stop_loss"),
        (lambda d: d["exits"]["channel"]["memecoin"].update(take_profit=0.02), "exits.channel.memecoin.take_profit"),
        (lambda d: d["exits"]["swing"]["large_cap"].update(stop_loss=0.11), "exits.swing.large_cap.stop_loss"),
        (lambda d: d["ml"]["targets"].update(sl_floor=0.005), "ml.targets.sl_floor"),
        (lambda d: d["features"]["ml"]["windows_min"].update(bb=310), "features.ml.windows_min.bb"),
        (lambda d: d["universe"]["memecoin"].append("SUPERLONGCOIN"), "universe.memecoin"),
        (lambda d: d["data"]["health"].update(every_min=45), "data.health.every_min"),
        (lambda d: d["shadow"]["variations"]["quick_exits"].update(max_hold_h=96),
         "shadow.variations.quick_exits.max_hold_h"),
    ],
)
def test_validation_rules_name_the_key(mutate, key):
    d = raw_defaults()
    mutate(d)
    with pytest.raises(ConfigError, match="`" + key.replace(".", r"\.") + "`"):
        build_config(d)


def test_base_timeframe_5m_needs_whole_bar_windows():
    d = merge(raw_defaults(), five_minute_base())
    with pytest.raises(ConfigError, match=r"`strategies\.swing\.lookback_min`: span 9 min is not a whole number of 5m"):
        build_config(d)
    d["strategies"]["swing"]["lookback_min"] = 10
    d["scan"]["windows_min"]["rsi"] = 70
    cfg = build_config(d)
    assert cfg.engine.base_timeframe is Timeframe.M5


def test_trail_lock_report_lists_every_default_cell(cfg):
    rows = trail_lock_report(cfg)
    assert len(rows) == 12  # SPEC §5.1: every default cell locks a net loss when the trail fires at arming
    cell = next(r for r in rows if r["strategy"] == "CHANNEL" and r["tier"] == "large_cap")
    # (1 + 0.01)(1 − 0.005) = 1.00495 → +0.495 % gross; round trip 0.9 % → −0.405 % net
    assert cell["gross_at_arming"] == pytest.approx(0.00495, abs=1e-12)
    assert cell["net_at_arming"] == pytest.approx(0.00495 - 0.009, abs=1e-12)


def test_a_wider_trail_activation_leaves_the_report():
    d = copy.deepcopy(raw_defaults())
    d["exits"]["swing"]["large_cap"]["trail_activation"] = 0.05  # 1.05 × 0.975 = 1.02375 > 1.009
    rows = trail_lock_report(build_config(d))
    assert not any(r["strategy"] == "SWING" and r["tier"] == "large_cap" for r in rows)
    assert len(rows) == 11


# --- issue 10, item 7: multipliers and divisors must be > 0 -------------------------------------------------------


@pytest.mark.parametrize(
    "text, key, bound",
    [
        ("protection: {regime: {size_multiplier: {caution: 0.0}}}", "protection.regime.size_multiplier.caution", ">"),
        ("protection: {regime: {size_multiplier: {euphoria: 0.0}}}", "protection.regime.size_multiplier.euphoria",
         ">"),
        ("protection: {regime: {size_multiplier: {euphoria: -0.7}}}", "protection.regime.size_multiplier.euphoria",
         ">"),
        ("protection: {regime: {size_multiplier: {normal: 0.0}}}", "protection.regime.size_multiplier.normal", ">"),
        ("protection: {regime: {size_multiplier: {panic: -0.5}}}", "protection.regime.size_multiplier.panic", ">="),
        ("protection: {stop_widening: {regime_multiplier: {caution: 0.0}}}",
         "protection.stop_widening.regime_multiplier.caution", ">"),
        ("protection: {stop_widening: {vol_factor: -3.0}}", "protection.stop_widening.vol_factor", ">="),
        ("exits: {tp_multiplier: {swing: 0.0}}", "exits.tp_multiplier.swing", ">"),
        ("portfolio: {position_size_usd: 0.0}", "portfolio.position_size_usd", ">"),
        ("portfolio: {initial_balance_usd: 0.0}", "portfolio.initial_balance_usd", ">"),
        ("strategies: {swing: {breakout_threshold: 0.0}}", "strategies.swing.breakout_threshold", ">"),
        ("strategies: {swing: {min_volume_surge: 0.0}}", "strategies.swing.min_volume_surge", ">"),
        ("strategies: {dca: {grid: {levels: {memecoin: 0}}}}", "strategies.dca.grid.levels.memecoin", ">"),
        ("prioritisation: {min_symbols: 0}", "prioritisation.min_symbols", ">"),
        ("features: {ml: {bb_std: 0.0}}", "features.ml.bb_std", ">"),
        ("shadow: {variations: {bear_market: {size_multiplier: 0.0}}}",
         "shadow.variations.bear_market.size_multiplier", ">"),
        ("shadow: {variations: {bull_market: {size_multiplier: -0.5}}}",
         "shadow.variations.bull_market.size_multiplier", ">"),
        ("shadow: {variations: {quick_exits: {trail_activation_multiplier: 0.0}}}",
         "shadow.variations.quick_exits.trail_activation_multiplier", ">"),
        ("shadow: {variations: {volatility_sized: {high_multiplier: 0.0}}}",
         "shadow.variations.volatility_sized.high_multiplier", ">"),
        ("threshold_manager: {tier_multiplier: {low: 0.0}}", "threshold_manager.tier_multiplier.low", ">"),
    ],
)
def test_a_zero_or_negative_multiplier_or_divisor_fails_the_load_naming_the_key(tmp_path, text, key, bound):
    p = write_user_config(tmp_path, text + "\n")
    with pytest.raises(ConfigError, match="`" + key.replace(".", r"\.") + f"`: must be {bound} 0"):
        load_config(p)


def test_size_multipliers_just_above_zero_load_and_panic_may_be_zero(tmp_path):
    from cryptotracker_assets.core.regime import Regime, size_multiplier

    p = write_user_config(tmp_path, "protection: {regime: {size_multiplier: "
                                    "{panic: 0.0, caution: 0.001, euphoria: 0.25, normal: 1.0}}}\n")
    cfg = load_config(p)
    assert size_multiplier(Regime.CAUTION, cfg) == 0.001
    assert size_multiplier(Regime.EUPHORIA, cfg) == 0.25
    assert size_multiplier(Regime.PANIC, cfg) == 0.0  # PANIC enters nothing (SPEC §8.1)


def test_size_mult_range_needs_a_positive_low(tmp_path):
    p = write_user_config(tmp_path, "ml: {targets: {size_mult_range: [0.0, 1.5]}}\n")
    with pytest.raises(ConfigError, match=r"`ml\.targets\.size_mult_range`: must be \[low, high\] with 0 < low"):
        load_config(p)


# --- issue 10, item 7: a 5m base timeframe has its own per-timeframe keys (no fallback to 1m) -----------------------

FIVE_MINUTE_WINDOWS = """engine: {base_timeframe: 5m}
strategies: {swing: {lookback_min: 10}}
scan: {windows_min: {rsi: 15}}
"""
# Every per-timeframe map of the config (SPEC §14), each with a 5m value unlike its 1m one.
FIVE_MINUTE_KEYS = """data:
  ingest: {5m: {cron_utc: "2-59/5 * * * *", overlap_min: 20, max_catchup_d: 3}}
  backfill_d: {5m: 60}
  retention_d: {5m: null}
  health:
    freshness_min: {5m: 25}
    min_completeness: {5m: 0.9}
    completeness_window_h: {5m: 48}
    gaps: {interval_multiple: {5m: 3}, lookback_d: {5m: 14}, alert_min: {5m: 30}}
"""
FIVE_MINUTE_MAPS = ["data.ingest", "data.backfill_d", "data.retention_d", "data.health.freshness_min",
                    "data.health.min_completeness", "data.health.completeness_window_h",
                    "data.health.gaps.interval_multiple", "data.health.gaps.lookback_d", "data.health.gaps.alert_min"]


def test_a_5m_base_without_its_own_keys_fails_naming_each_missing_key(tmp_path):
    p = write_user_config(tmp_path, FIVE_MINUTE_WINDOWS)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    for key in FIVE_MINUTE_MAPS:
        assert f"`{key}.5m`: missing key" in msg, key
    # One key left out: the load names exactly that one.
    partial = FIVE_MINUTE_KEYS.replace(", alert_min: {5m: 30}", "")
    with pytest.raises(ConfigError) as info:
        load_config(write_user_config(tmp_path, FIVE_MINUTE_WINDOWS + partial))
    assert "`data.health.gaps.alert_min.5m`: missing key" in str(info.value)
    assert str(info.value).count("missing key") == 1


def test_a_5m_base_reads_its_own_keys_not_the_1m_ones(tmp_path):
    cfg = load_config(write_user_config(tmp_path, FIVE_MINUTE_WINDOWS + FIVE_MINUTE_KEYS))
    d = cfg.data
    assert cfg.engine.base_timeframe is Timeframe.M5
    assert (d.ingest.of("5m").cron_utc, d.ingest.of("5m").overlap_min, d.ingest.of("5m").max_catchup_d) == (
        "2-59/5 * * * *", 20, 3)
    assert d.backfill_d.of("5m") == 60
    assert d.retention_d.of("5m") is None  # null = keep forever, given explicitly
    assert d.health.freshness_min.of("5m") == 25
    assert d.health.min_completeness.of("5m") == 0.9
    assert d.health.completeness_window_h.of("5m") == 48
    assert (d.health.gaps.interval_multiple.of("5m"), d.health.gaps.lookback_d.of("5m"),
            d.health.gaps.alert_min.of("5m")) == (3, 14, 30)
    # the 1m settings are untouched (SPEC §14)
    assert (d.ingest.of("1m").overlap_min, d.retention_d.of("1m"), d.health.freshness_min.of("1m")) == (10, 30, 15)
    # the 5m keys survive the round trip through the effective values
    assert build_config(raw_dict(cfg)).data.ingest.of("5m").overlap_min == 20


def test_5m_keys_are_refused_with_a_1m_base_and_never_fall_back(tmp_path, cfg):
    with pytest.raises(ConfigError, match=r"`data\.backfill_d\.5m`: only read when engine\.base_timeframe is 5m"):
        load_config(write_user_config(tmp_path, "data: {backfill_d: {5m: 60}}\n"))
    with pytest.raises(ConfigError, match="no fallback"):
        cfg.data.ingest.of(Timeframe.M5)
    with pytest.raises(ConfigError, match="no fallback"):
        cfg.data.health.freshness_min.of("5m")
    # 5m is a key of the per-timeframe maps only
    with pytest.raises(ConfigError, match=r"unknown config key `strategies\.5m`"):
        load_config(write_user_config(tmp_path, "strategies: {5m: 1}\n"))
    # the defaults have no 5m key and their dump (and fingerprint) is the file as written
    assert raw_dict(cfg) == raw_defaults()
