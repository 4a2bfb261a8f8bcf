"""Shadows through Dagster and the warehouse (issue 11): the tick writes shadow decisions and exits with its scan rows;
the daily job analyzes them and proposes; an approved revision is the engine's config from the first cycle point after
its approval — scan rows, ledger rows and shadows carry its version — and the day's audit replays it; a rollback
restores the exact previous values; ``cryptotracker shadows`` prints the leaderboard.

The world: two synthetic days of the small universe with a 2 h max hold (so the analyzer's windows — entries whose
max hold has elapsed — fill within two days)."""

from __future__ import annotations

import pandas as pd
import pytest

import dagster as dg
from cryptotracker_assets.cli import main as cli
from cryptotracker_assets.core.config import Tier, load_config
from cryptotracker_assets.core.revisions import proposal_record, proposals_frame
from cryptotracker_assets.core.shadow_schemas import ShadowOutcomeSchema, ShadowPerformanceSchema
from cryptotracker_assets.core.shadows.outcomes import derive_outcomes
from cryptotracker_assets.definitions import build_definitions
from cryptotracker_assets.services.config_versions import origin_of
from cryptotracker_assets.services.engine_runner import audit_day
from cryptotracker_assets.services.revisions import approve, effective_config, rollback_last
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.core.test_shadows import assert_champions_reproduce
from cryptotracker_tests.engine_support import DAYS, ingest_and_scan, new_world, user_config

SHORT_HOLD = """
exits: {max_hold_h: 2}
shadow: {variations: {quick_exits: {max_hold_h: 1}, ml_trust: {hold_h_range: [1, 2]}}}
"""
STEP = pd.Timedelta(minutes=5)
KEY = "strategies.dca.drop_threshold"


@pytest.fixture(scope="module")
def base_world(tmp_path_factory):
    world = new_world(tmp_path_factory.mktemp("shadow_flow"), user_config(extra=SHORT_HOLD))
    ingest_and_scan(world, DAYS)
    return world


@pytest.fixture()
def world(base_world, tmp_path, monkeypatch):
    w = base_world.copy(tmp_path / "w")
    for k, v in w.env().items():
        monkeypatch.setenv(k, v)
    return w


def run(defs, job: str, instance, partition: str | None = None, run_config: dict | None = None):
    result = defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance,
                                                          run_config=run_config, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure][:3]
    return result


def stable_time(wh: Warehouse, cfg, after: pd.Timestamp) -> pd.Timestamp:
    """A moment after ``after`` whose previous threshold_manager.regime_stable_h had one regime (the gate)."""
    reg = wh.regimes(after - pd.Timedelta(hours=13), after + pd.Timedelta(hours=12))
    span = pd.Timedelta(hours=cfg.threshold_manager.regime_stable_h)
    for t in reg.index[reg.index >= after]:
        window = reg[(reg.index > t - span) & (reg.index <= t)]
        if len(window) == span // STEP and window.nunique() == 1 and window.iloc[0] != "UNKNOWN":
            return t + pd.Timedelta(minutes=2, seconds=30)
    pytest.fail("no 12 h span with one regime in the synthetic days")


def test_tick_writes_shadows_and_the_daily_job_analyzes_and_proposes(world, capsys):
    defs = build_definitions(world.env())
    with dg.instance_for_test(temp_dir=str(world.home)) as instance:
        for d in DAYS:
            run(defs, "paper_engine_job", instance, d)
        wh = Warehouse(world.warehouse)
        rows = wh.shadow_rows()
        outcomes = derive_outcomes(rows.decisions, rows.exits, rows.real_sells)
        ShadowOutcomeSchema.validate(outcomes, lazy=True)
        takes = outcomes[outcomes["opened"]]
        assert len(takes) > 50 and (takes["outcome"].isin(["WIN", "LOSS", "TIMEOUT"])).mean() > 0.9
        # every real trade's CHAMPION shadow reproduces it unless a shift / manual / no-data close ended it
        ledger = wh.read_sql("SELECT * FROM paper_trades")
        assert assert_champions_reproduce(rows.decisions, rows.exits, ledger) > 5
        result = run(defs, "shadow_daily_job", instance)
        perf = wh.performance()
        ShadowPerformanceSchema.validate(perf.astype({"trades": "int64", "pending": "int64"}), lazy=True)
        assert set(perf["strategy"]) >= {"ALL", "CHANNEL"} and (perf["analyzed_at"] == wh.engine_state()["cursor"]).all()
        mats = {m.asset_key.to_user_string(): m for m in result.asset_materializations_for_node("shadow_performance")}
        meta = mats["shadow_performance"].metadata
        assert "leaderboard_72h" in meta and any(k.startswith("outperformance_72h/") for k in meta)
        # the same analysis again stores nothing new (history keyed by analysis time)
        n = len(wh.read_sql("SELECT * FROM shadow_performance"))
        run(defs, "shadow_analysis_job", instance)
        assert len(wh.read_sql("SELECT * FROM shadow_performance")) == n
        # the daily summary queued for #reports
        kinds = wh.read_sql("SELECT kind, channel FROM notification_outbox")
        assert ("shadow_daily_summary", "#reports") in set(map(tuple, kinds.to_numpy()))
    assert cli(["shadows", "--window", "24"]) == 0
    out = capsys.readouterr().out
    assert "CHAMPION" in out and "vs CHAMPION" in out


def test_an_approved_revision_acts_from_the_next_cycle_point_and_rolls_back_exactly(world, capsys):
    defs = build_definitions(world.env())
    base = load_config(str(world.config))
    origin = origin_of(str(world.config))
    wh = Warehouse(world.warehouse)
    with dg.instance_for_test(temp_dir=str(world.home)) as instance:
        run(defs, "paper_engine_job", instance, DAYS[0])
        before = effective_config(wh, base, origin)
        e = stable_time(wh, before, pd.Timestamp(f"{DAYS[1]} 06:00", tz="UTC"))
        old = {t: before.strategies.dca.drop_threshold.of(t) for t in Tier}
        new = {t: -abs(v) * 1.2 for t, v in old.items()}  # a bounded step towards deeper drops
        rec = proposal_record(strategy="DCA", variation="DCA_DROPS_0.03", tier="LOW", parameter="dca_drop_threshold",
                              changes=[(f"{KEY}.{t.value}", old[t], new[t], -0.03) for t in Tier],
                              evidence={"outperformance": 0.04}, created_at=e - pd.Timedelta(hours=1), cfg=before)
        wh.append_proposals(proposals_frame([rec]))
        revision = approve(wh, base, origin, rec["proposal_id"], "alice", "shadow evidence", now=e)
        assert revision.baseline is not None  # stored with the revision (I-17)
        run(defs, "paper_engine_job", instance, DAYS[1])
        first = e.floor(STEP) + STEP  # the first cycle point after the approval
        scans = wh.read_sql("SELECT timestamp, strategy, tier, setup_threshold, config_version FROM scan_history "
                            "WHERE strategy = 'DCA'")
        pre, post = scans[scans["timestamp"] < first], scans[scans["timestamp"] >= first]
        assert set(pre["config_version"]) == {before.config_version}
        assert set(post["config_version"]) == {revision.config_version} != {before.config_version}
        large = post[post["tier"] == "large_cap"]["setup_threshold"]
        assert len(large) > 100 and len(pre) > 100 and (large == new[Tier.LARGE_CAP]).all()
        assert (pre[pre["tier"] == "large_cap"]["setup_threshold"] == old[Tier.LARGE_CAP]).all()
        buys = wh.read_sql("SELECT entry_time, config_version FROM paper_trades WHERE side = 'BUY' AND level = 0")
        assert set(buys.loc[buys["entry_time"] >= first, "config_version"]) <= {revision.config_version}
        shadows = wh.read_sql("SELECT timestamp, config_version FROM shadow_outcomes")
        assert set(shadows.loc[shadows["timestamp"] >= first, "config_version"]) <= {revision.config_version}
        # the day's audit replays it under the configs in force at each cycle point
        cfg_now = effective_config(wh, base, origin)
        report = audit_day(wh, cfg_now, pd.Timestamp(DAYS[1], tz="UTC"),
                           configs=defs.resources["project_config"].timeline)
        assert report.passed, report.first_difference
        # roll back: the exact previous values (the same content hash as before the approval)
        back = rollback_last(wh, base, origin, pd.Timedelta(hours=24), "bob", "undo", now=e + pd.Timedelta(hours=2))
        assert len(back) == 1
        restored = effective_config(wh, base, origin)
        assert restored.fingerprint() == before.fingerprint()
        assert {t: restored.strategies.dca.drop_threshold.of(t) for t in Tier} == old
    assert cli(["proposals", "list"]) == 0
    assert "ROLLED_BACK" in capsys.readouterr().out


def test_training_labels_of_a_day_then_a_training_run_with_its_gates(world):
    """Labels through Dagster (issue 12 slice): the day's rows from real trades, simulated setups and shadows, with
    their features known at T; a second materialization adds nothing; training records its gates."""
    from cryptotracker_assets.core.model_schemas import TrainingLabelSchema

    defs = build_definitions(world.env())
    with dg.instance_for_test(temp_dir=str(world.home)) as instance:
        for d in DAYS:
            run(defs, "paper_engine_job", instance, d)
            run(defs, "features_job", instance, d)
        result = run(defs, "training_labels_job", instance, DAYS[1])
        wh = Warehouse(world.warehouse)
        labels = wh.labels()
        TrainingLabelSchema.validate(labels, lazy=True)
        assert len(labels) > 50 and {"real", "simulated"} <= set(labels["source"])
        assert (pd.DatetimeIndex(labels["final_day"]) == pd.Timestamp(DAYS[1], tz="UTC")).all()
        assert (labels["max_feature_time"] < labels["first_label_bar"]).all()
        assert labels["rsi_14"].notna().mean() > 0.9  # the 15m features joined by time, not filled
        real = labels[labels["source"] == "real"]
        sells = wh.read_sql("SELECT scan_id, pnl_usd, exit_reason FROM paper_trades WHERE side = 'SELL'")
        joined = real.merge(sells, on="scan_id")
        assert len(joined) == len(real) and ((joined["pnl_usd"] > 0).astype(int) == joined["label"]).all()
        mats = [m for m in result.asset_materializations_for_node("training_labels")]
        assert mats[0].metadata["new_rows"].value == len(labels)
        again = run(defs, "training_labels_job", instance, DAYS[1])
        assert again.asset_materializations_for_node("training_labels")[0].metadata["new_rows"].value == 0
        r = defs.resolve_job_def("models_training_job").execute_in_process(partition_key="SWING", instance=instance,
                                                                           raise_on_error=False)
        checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
                  for e in r.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
        assert len(checks) == 5 and not all(checks.values())  # a few SWING labels: a blocking gate fails
        assert wh.champion("SWING") is None  # the pointer never moved


def test_the_engine_uses_the_champion_exactly_as_offline_inference(tmp_path, monkeypatch):
    """A champion swapped in before day 2: day 2's scan rows carry ``model:<version>`` and its P(WIN) — equal to
    the model run offline over the same feature frame — decided against the strategy's threshold and the near-miss
    band; shadows see a champion (CONFIDENCE_TEST rows). A corrupt champion file: rule confidence and an alert."""
    import numpy as np

    from cryptotracker_assets.core.config import Strategy
    from cryptotracker_assets.core.ml import save, train
    from cryptotracker_assets.core.ml.features import MODEL_FEATURES, feature_set_version, model_feature_frame
    from cryptotracker_assets.core.universe import Universe
    from cryptotracker_assets.services.inference import alert_problems, champions, feature_rows
    from cryptotracker_assets.storage.models import Swap
    from cryptotracker_tests.core.test_ml_training import make_labels

    w = new_world(tmp_path / "w", user_config(extra=SHORT_HOLD))
    ingest_and_scan(w, DAYS, scan=False)
    env = {**w.env(), "CRYPTOTRACKER_MODELS": str(tmp_path / "models")}
    defs = build_definitions(env)
    cfg = defs.resources["project_config"].load()
    wh = Warehouse(w.warehouse)
    root = tmp_path / "models"
    day2 = pd.Timestamp(DAYS[1], tz="UTC")
    with dg.instance_for_test(temp_dir=str(w.home)) as instance:
        for d in DAYS:
            run(defs, "features_job", instance, d)
        run(defs, "paper_engine_job", instance, DAYS[0])
        versions = {}
        for k, s in enumerate(Strategy):
            raw = make_labels(600, 40 + k, strategy=s.value)
            labels = raw.drop(columns=["f1", "f2", "f3"]).assign(
                **{f: np.nan for f in MODEL_FEATURES}).assign(drop=raw["f1"], rsi_14m=50 + 10 * raw["f2"],
                                                            volume_ratio=raw["f3"])
            model = train(labels, MODEL_FEATURES, s, cfg, started_at=day2 - pd.Timedelta(hours=2, minutes=k),
                          feature_set_version=feature_set_version(cfg))
            stored = save(model, root)
            wh.record_swap(Swap(s.value, model.model_version, model.feature_set_version, stored.content_hash,
                                model.test_metrics.composite, "promote", "test", "inference test",
                                day2 - pd.Timedelta(minutes=1)))
            versions[s] = (model.model_version, model)
        run(defs, "paper_engine_job", instance, DAYS[1])
    scans = wh.read_sql("SELECT * FROM scan_history WHERE setup AND timestamp >= ?", [day2.to_pydatetime()])
    assert len(scans) > 20
    for s, (version, model) in versions.items():
        rows = scans[scans["strategy"] == s.value].reset_index(drop=True)
        if rows.empty:
            continue
        assert set(rows["confidence_source"]) == {f"model:{version}"}
        ml, daily, regime = feature_rows(wh, day2, day2 + pd.Timedelta(days=1))
        keys = pd.DataFrame({"symbol": rows["symbol"], "setup_time": rows["timestamp"]})
        feats = model_feature_frame(keys, rows, ml, daily, regime, Universe.from_config(cfg).tier, cfg=cfg)
        expected = model.predict_proba(feats)
        np.testing.assert_array_equal(rows["confidence"].to_numpy(), expected)  # bit for bit
        thr = cfg.ml.confidence_threshold.of(s)
        below = (rows["confidence"] < thr) & ~rows["reason"].isin(["stale_data", "insufficient_history",
                                                                     "data_suspect"])
        assert below.any() and (rows.loc[below, "reason"] == "ml_below_threshold").all()
        assert (rows.loc[below & (rows["confidence"] >= cfg.ml.near_miss_ratio * thr), "decision"] == "NEAR_MISS").all()
        assert (rows["threshold"] == thr).all()
    shadows = wh.read_sql("SELECT variation FROM shadow_outcomes WHERE timestamp >= ?", [day2.to_pydatetime()])
    assert shadows["variation"].str.startswith("CONFIDENCE_TEST_").any()  # a champion is in use
    # ML_TRUST: tp, stop (unwidened) and hold from the champion's regressors on the row's features, clamped (§10.1)
    trust = wh.read_sql("SELECT * FROM shadow_outcomes WHERE variation = 'ML_TRUST' AND opened")
    assert len(trust) > 0
    ml_, daily_, regime_ = feature_rows(wh, day2, day2 + pd.Timedelta(days=1))
    scans_all = wh.read_sql("SELECT * FROM scan_history WHERE timestamp >= ?", [day2.to_pydatetime()])
    for s, (version, model) in versions.items():
        mine = trust[trust["strategy"] == s.value]
        if mine.empty:
            continue
        rows = scans_all.set_index("scan_id").loc[mine["scan_id"]].reset_index()
        keys = pd.DataFrame({"symbol": rows["symbol"], "setup_time": rows["timestamp"]})
        feats = model_feature_frame(keys, rows, ml_, daily_, regime_, Universe.from_config(cfg).tier, cfg=cfg)
        tg = model.predict_targets(feats)
        rt = np.array([2 * cfg.costs.taker_fee + 2 * cfg.costs.slippage.of(t) for t in mine["tier"]])
        lo, hi = cfg.shadow.variations.ml_trust.hold_h_range
        np.testing.assert_array_equal(mine["take_profit"].to_numpy(),
                                      np.minimum(np.maximum(tg["tp_target"].to_numpy(), rt), cfg.ml.targets.tp_cap))
        np.testing.assert_array_equal(mine["stop_loss"].to_numpy(),
                                      np.minimum(np.maximum(tg["sl_target"].to_numpy(), cfg.ml.targets.sl_floor), 0.5))
        np.testing.assert_array_equal(mine["max_hold_h"].to_numpy(),
                                      np.minimum(np.maximum(tg["hold_target_h"].to_numpy(), lo), hi))
    # the backtest replays the champion that was in force: the same scan rows and ledger, bit for bit
    for k, v in env.items():  # the world's environment with its model store
        monkeypatch.setenv(k, v)
    from cryptotracker_assets.cli import main as cli

    out = tmp_path / "bt.duckdb"
    assert cli(["replay", "--from", DAYS[0], "--to", DAYS[1], "--out", str(out), "--quiet", "--require-parity"]) == 0
    bt = Warehouse(out)
    a = wh.read_sql("SELECT * FROM scan_history ORDER BY timestamp, strategy, symbol")
    b = bt.read_sql("SELECT * FROM scan_history ORDER BY timestamp, strategy, symbol")
    pd.testing.assert_frame_equal(a, b[list(a.columns)], check_exact=True)
    for table in ("shadow_outcomes", "shadow_exits"):  # the shadows too: the champion's outputs replayed
        a = wh.read_sql(f"SELECT * FROM {table} ORDER BY shadow_id")
        b = bt.read_sql(f"SELECT * FROM {table} ORDER BY shadow_id")
        pd.testing.assert_frame_equal(a, b[list(a.columns)], check_exact=True)
    # a corrupt champion file: never served; the strategy falls back to rule confidence
    version, _ = versions[Strategy.DCA]
    clf = root / "dca" / version / "classifier.json"
    data = bytearray(clf.read_bytes())
    data[len(data) // 3] ^= 0x01
    clf.write_bytes(bytes(data))
    found = champions(wh, cfg, root, day2 + pd.Timedelta(hours=1), feature_rows(wh, day2, day2))
    assert Strategy.DCA not in found.sources and "cannot be loaded" in found.problems[Strategy.DCA]
    assert set(found.sources) == {Strategy.SWING, Strategy.CHANNEL}
    assert alert_problems(wh, cfg, found) == 1 and alert_problems(wh, cfg, found) == 0  # one alert, not one a tick
    alert = wh.read_sql("SELECT channel, text FROM notification_outbox WHERE kind = 'champion_unavailable'")
    assert alert["channel"].tolist() == ["#system-alerts"] and "rule confidence" in alert["text"].iloc[0]


def test_history_the_engine_never_saw_is_labelled_from_the_detectors_replayed_over_stored_bars(tmp_path):
    """SPEC §11.1 simulated rows for days without scan history: the detectors replayed over the stored bars give the
    same simulated labels as the live chain's scan rows of those days once the engine has seen them."""
    from cryptotracker_assets.services.labels import labels_for_day

    w = new_world(tmp_path / "w", user_config(extra=SHORT_HOLD))
    ingest_and_scan(w, DAYS, scan=False)
    defs = build_definitions(w.env())
    cfg = defs.resources["project_config"].load()
    wh = Warehouse(w.warehouse)
    day = pd.Timestamp(DAYS[1], tz="UTC")  # (the first day has no 24 h of BTC history: regime UNKNOWN)
    replayed = labels_for_day(wh, cfg, day)  # nothing of the chain has run: no scan history at all
    assert len(replayed) > 20 and set(replayed["source"]) == {"simulated"}
    with dg.instance_for_test(temp_dir=str(w.home)) as instance:
        for d in DAYS:
            run(defs, "paper_engine_job", instance, d)
    live = labels_for_day(wh, cfg, day)
    sim = live[live["source"] == "simulated"].set_index("label_id")
    common = replayed.set_index("label_id").index.intersection(sim.index)
    assert len(common) > 0.8 * len(sim)  # the same setups (the live ones that became real trades are not simulated)
    cols = ["setup_time", "entry_time", "exit_time", "exit_reason", "label", "pnl_pct", "tp_target", "sl_target"]
    pd.testing.assert_frame_equal(replayed.set_index("label_id").loc[common, cols], sim.loc[common, cols],
                                  check_exact=True)
