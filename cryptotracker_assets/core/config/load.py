"""Loading the config: the default file, the user-file merge, schema validation and the SPEC §0.5 rules.

The effective config is ``config.yaml`` merged with the user file named by ``CRYPTOTRACKER_CONFIG`` (the caller
passes that path: this module never reads the environment).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..common import MINUTES_PER_DAY
from .blocks import BASE_ONLY_TIMEFRAME
from .enums import ConfigError, Strategy, Tier, Timeframe
from .model import Config
from .rules import sign_errors, timeframe_key_errors

# The default config file, cryptotracker_assets/config.yaml (this module lives in cryptotracker_assets/core/config/).
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config.yaml"

# SPEC §0.3: trade_group_id = {STRATEGY}_{SYMBOL}_{yymmddHHMMSS}_{xxxx}, at most 36 characters.
TRADE_GROUP_ID_MAX_LEN = 36


# ---------------------------------------------------------------------------------------------------------------
# Loading and merging
# ---------------------------------------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def merge(base: Mapping[str, Any], override: Mapping[str, Any], _path: str = "") -> dict[str, Any]:
    """Deep-merge ``override`` over ``base``. Keys absent from ``base`` are errors (unknown key), except the ``5m``
    key of a per-timeframe map (one with a ``1m`` key), which the defaults leave out (SPEC §0.4)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        dotted = f"{_path}.{key}" if _path else str(key)
        if key not in base:
            if key == BASE_ONLY_TIMEFRAME.value and Timeframe.M1.value in base:
                out[key] = copy.deepcopy(value)
                continue
            raise ConfigError(f"unknown config key `{dotted}`")
        if isinstance(base[key], Mapping) and isinstance(value, Mapping):
            out[key] = merge(base[key], value, dotted)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        # Generic models put their type parameter in the location; drop those parts.
        loc = ".".join(p for p in loc.split(".") if "[" not in p)
        kind = err["type"]
        if kind == "missing":
            msg = "missing key"
        elif kind == "extra_forbidden":
            msg = "unknown key"
        else:
            msg = err["msg"]
        lines.append(f"`{loc}`: {msg}")
    return f"invalid config ({source}): " + "; ".join(lines)


def build_config(data: Mapping[str, Any], source: str = "config", config_version: int = 0) -> Config:
    """Validate a raw mapping into a :class:`Config` (schema, then the SPEC §0.5 rules)."""
    try:
        cfg = Config.model_validate({**data, "config_version": config_version})
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    errors = validate_rules(cfg)
    if errors:
        raise ConfigError(f"invalid config ({source}): " + "; ".join(errors))
    return cfg


def load_config(user_path: str | Path | None = None, default_path: str | Path = DEFAULT_CONFIG_PATH) -> Config:
    """Load ``config.yaml`` ⊕ the user file (``CRYPTOTRACKER_CONFIG``, passed by the caller)."""
    data = _read_yaml(Path(default_path))
    source = str(default_path)
    if user_path:
        override = _read_yaml(Path(user_path))
        data = merge(data, override)
        source = f"{default_path} + {user_path}"
    return build_config(data, source=source)


def raw_dict(cfg: Config) -> dict[str, Any]:
    """The effective values as plain YAML-able data (keys as in the file)."""
    return cfg.model_dump(mode="json", by_alias=True)


# ---------------------------------------------------------------------------------------------------------------
# Validation rules (SPEC §0.5)
# ---------------------------------------------------------------------------------------------------------------


def _whole_bars(errors: list[str], key: str, span_min: float, timeframe: Timeframe) -> None:
    if span_min <= 0 or span_min % timeframe.minutes != 0:
        errors.append(f"`{key}`: span {span_min} min is not a whole number of {timeframe.value} bars")


def validate_rules(cfg: Config) -> list[str]:
    """The cross-key checks of SPEC §0.5; returns one message per failure (empty when valid)."""
    errors: list[str] = []
    u = cfg.universe
    tiers = {t.value: getattr(u, t.value) for t in Tier}
    seen: dict[str, str] = {}
    for tier_name, symbols in tiers.items():
        for s in symbols:
            if s in seen:
                errors.append(f"`universe.{tier_name}`: {s} is also in universe.{seen[s]} (tier lists must be disjoint)")
            seen[s] = tier_name
    enabled = [st for st in Strategy if getattr(cfg.strategies, st.key).enabled]
    if enabled:
        longest = max(enabled, key=lambda st: len(st.value))
        id_room = TRADE_GROUP_ID_MAX_LEN - len(longest.value) - len("__yymmddHHMMSS_xxxx")
        for s, tier_name in seen.items():
            if len(s) > id_room:
                errors.append(f"`universe.{tier_name}`: symbol {s} is longer than {id_room} characters: its "
                              f"{longest.value} trade_group_id would exceed {TRADE_GROUP_ID_MAX_LEN} (SPEC §0.3)")
    for s in u.inactive:
        if s not in seen:
            errors.append(f"`universe.inactive`: {s} is not in any tier list")
    if u.market_symbol not in seen:
        errors.append(f"`universe.market_symbol`: {u.market_symbol} is not in the universe")
    elif u.market_symbol in u.inactive:
        errors.append(f"`universe.market_symbol`: {u.market_symbol} is inactive")
    for s in cfg.prioritisation.symbols:
        if s not in seen:
            errors.append(f"`prioritisation.symbols`: {s} is not in the universe")

    alloc = cfg.portfolio.allocation
    total = alloc.dca + alloc.swing + alloc.channel
    if abs(total - 1.0) > 1e-9:
        errors.append(f"`portfolio.allocation`: allocations sum to {total}, not 1")

    eng = cfg.engine
    if eng.cycle_min <= 0 or MINUTES_PER_DAY % eng.cycle_min != 0:
        errors.append(f"`engine.cycle_min`: {eng.cycle_min} does not divide 1440")
    if not 0 < eng.min_window_coverage <= 1:
        errors.append("`engine.min_window_coverage`: must be in (0, 1]")
    if eng.base_timeframe not in (Timeframe.M1, Timeframe.M5):
        errors.append("`engine.base_timeframe`: must be 1m (or 5m for imported data)")
    base = eng.base_timeframe
    if eng.cycle_min % base.minutes != 0:
        errors.append(f"`engine.cycle_min`: {eng.cycle_min} is not a whole number of {base.value} bars")
    ev = cfg.shadow.evaluate_every_min
    if ev <= 0 or MINUTES_PER_DAY % ev != 0 or (eng.cycle_min > 0 and ev % eng.cycle_min != 0):
        errors.append(f"`shadow.evaluate_every_min`: {ev} must divide 1440 and be a multiple of engine.cycle_min "
                      f"(shadow no-data closes happen at the cycle points on its UTC grid)")

    # Every span is whole bars of the timeframe it is applied to.
    st = cfg.strategies
    for key, span in [
        ("strategies.dca.lookback_min", st.dca.lookback_min),
        ("strategies.dca.volume_filter.baseline_min", st.dca.volume_filter.baseline_min),
        ("strategies.swing.lookback_min", st.swing.lookback_min),
        ("strategies.channel.lookback_min", st.channel.lookback_min),
        *[(f"scan.windows_min.{k}", v) for k, v in cfg.scan.windows_min.model_dump().items()],
        ("engine.max_bar_lag_min", eng.max_bar_lag_min),
        ("engine.entry_timeout_min", eng.entry_timeout_min),
    ]:
        _whole_bars(errors, key, span, base)
    ml_tf = cfg.features.ml.timeframe
    if ml_tf.minutes % base.minutes != 0:
        errors.append(f"`features.ml.timeframe`: {ml_tf.value} is not a multiple of the base timeframe")
    _whole_bars(errors, "features.ml.min_history_min", cfg.features.ml.min_history_min, ml_tf)
    for name, value in cfg.features.ml.windows_min.model_dump().items():
        for i, span in enumerate(value if isinstance(value, list) else [value]):
            suffix = f"[{i}]" if isinstance(value, list) else ""
            _whole_bars(errors, f"features.ml.windows_min.{name}{suffix}", span, ml_tf)
    pr = cfg.prioritisation
    for key in ("window_min", "sma_fast_min", "sma_slow_min"):
        _whole_bars(errors, f"prioritisation.{key}", getattr(pr, key), pr.timeframe)

    # Exit table sanity.
    for strategy in Strategy:
        for tier in Tier:
            p = cfg.exits.params(strategy, tier)
            key = f"exits.{strategy.key}.{tier.value}"
            _check_exit_cell(errors, cfg, key, strategy, tier, p.take_profit, p.stop_loss, p.trail, check_trail=True)
            if p.stop_loss > cfg.protection.stop_widening.cap.of(tier):
                errors.append(f"`{key}.stop_loss`: base stop exceeds protection.stop_widening.cap.{tier.value}")
    for tier in Tier:
        if cfg.ml.targets.sl_floor <= cfg.costs.slippage.of(tier):
            errors.append(f"`ml.targets.sl_floor`: must exceed costs.slippage.{tier.value}")

    # Variations' effective values pass the same checks except trail <= stop_loss.
    v = cfg.shadow.variations
    for strategy in Strategy:
        for tier in Tier:
            p = cfg.exits.params(strategy, tier)
            for vname, tp_mult, sl in [
                ("bear_market", v.bear_market.tp_multiplier, v.bear_market.stop_loss),
                ("bull_market", v.bull_market.tp_multiplier, v.bull_market.stop_loss),
                ("quick_exits", v.quick_exits.tp_multiplier, p.stop_loss),
            ]:
                key = f"shadow.variations.{vname} ({strategy.key}.{tier.value})"
                _check_exit_cell(errors, cfg, key, strategy, tier, p.take_profit * tp_mult, sl, p.trail, check_trail=False)
                if sl > cfg.protection.stop_widening.cap.of(tier):
                    errors.append(f"`{key}.stop_loss`: base stop exceeds protection.stop_widening.cap.{tier.value}")
    if v.quick_exits.max_hold_h > cfg.exits.max_hold_h:
        errors.append("`shadow.variations.quick_exits.max_hold_h`: exceeds exits.max_hold_h")
    hr = v.ml_trust.hold_h_range
    if len(hr) != 2 or hr[0] > hr[1] or hr[1] > cfg.exits.max_hold_h:
        errors.append("`shadow.variations.ml_trust.hold_h_range`: must be [low, high] with high <= exits.max_hold_h")

    if len(cfg.ml.split) != 3 or abs(sum(cfg.ml.split) - 1.0) > 1e-9:
        errors.append("`ml.split`: must be three fractions summing to 1")
    smr = cfg.ml.targets.size_mult_range
    if len(smr) != 2 or not 0 < smr[0] <= smr[1]:
        errors.append("`ml.targets.size_mult_range`: must be [low, high] with 0 < low <= high")
    if cfg.data.health.every_min <= 0 or 60 % cfg.data.health.every_min:
        errors.append("`data.health.every_min`: must divide 60 (it becomes the cron */every_min)")
    if len(cfg.data.ingest.retry_delays_s) < cfg.data.ingest.retries:
        errors.append("`data.ingest.retry_delays_s`: needs one delay per retry")
    errors.extend(sign_errors(cfg))
    errors.extend(timeframe_key_errors(cfg))
    return errors


def _check_exit_cell(
    errors: list[str],
    cfg: Config,
    key: str,
    strategy: Strategy,
    tier: Tier,
    take_profit: float,
    stop_loss: float,
    trail: float,
    *,
    check_trail: bool,
) -> None:
    if not 0 < stop_loss <= 0.5:
        errors.append(f"`{key}.stop_loss`: must be in (0, 0.5]")
    if check_trail and trail > stop_loss:
        errors.append(f"`{key}.trail`: trail {trail} exceeds stop_loss {stop_loss}")
    if not 0 < take_profit <= 1:
        errors.append(f"`{key}.take_profit`: must be in (0, 1]")
    eff_tp = take_profit * cfg.exits.tp_multiplier.of(strategy)
    if eff_tp <= cfg.costs.round_trip(tier):
        errors.append(
            f"`{key}.take_profit`: effective take-profit {eff_tp:.6g} is not above the {tier.value} round trip "
            f"{cfg.costs.round_trip(tier):.6g}"
        )
