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
    trail_lock_report,
)
from cryptotracker_tests.conftest import PROJECT_ROOT, write_user_config


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
    d = raw_defaults()
    d["engine"]["base_timeframe"] = "5m"
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
