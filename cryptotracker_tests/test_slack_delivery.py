"""Slack end to end (issue 13): the real slack_sdk client inside dagster-slack's SlackResource posts to a fake
Slack Web API on 127.0.0.1 — a run failure evaluated by the failure sensor against a test instance, a failing check
(once, then "resolved"), a trade close, a PANIC and each trading report, with their channel, text and Block Kit
blocks; a 500 then success delivers exactly once; Slack's rate limit queues a burst instead of failing it; the
token never appears in any log, message, metadata or error text."""

from __future__ import annotations

import html
import json
import logging
import re
import socket

import pandas as pd
import pytest

import dagster as dg
from cryptotracker_assets.core.config import load_config
from cryptotracker_assets.core.engine_records import outbox_rows
from cryptotracker_assets.definitions import build_definitions
from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.services.outbox import Pacing, deliver
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.core.test_engine import MIN, T0, Scenario, base_raw, make_cfg  # noqa: F401 (fixture)
from cryptotracker_tests.engine_support import at, engine_config, prepared_world
from cryptotracker_tests.fakes.slack import FakeSlack
from resources import LogNotifier, SlackApiResource, SlackNotifier, WarehouseResource
from sensors.alerts import make_check_alert_sensor, make_run_failure_sensor
from sensors.outbox import make_outbox_sensor

TOKEN = "xoxb-4242-SECRET-never-logged"
CFG = load_config()
CHANNELS = CFG.notifications.channels.model_dump()
MSG_ID = re.compile(r" \[msg ([a-z_]+_\d{10}_[0-9a-f]{10})\]$")


@pytest.fixture()
def slack(fixtures_dir):
    with FakeSlack.from_fixtures(fixtures_dir) as fake:
        yield fake


def notifier(fake: FakeSlack) -> SlackNotifier:
    return SlackNotifier(slack=SlackApiResource(token=TOKEN, base_url=fake.base_url), channels=CHANNELS)


def resources(fake: FakeSlack, warehouse) -> dict:
    return {"warehouse": WarehouseResource(path=str(warehouse)), "notifier": notifier(fake)}


def deliver_all(warehouse, fake: FakeSlack, instance):
    """One evaluation of the outbox delivery sensor (no pacing: the fake has no rate limit unless asked)."""
    with dg.build_sensor_context(instance=instance, resources=resources(fake, warehouse)) as ctx:
        return make_outbox_sensor(min_interval_s=0.0).evaluate_tick(ctx)


def block_text(post: dict) -> str:
    """Every text of a post's blocks (header, sections, context elements), joined."""
    out = []
    for b in post["blocks"] or []:
        if "text" in b:
            out.append(b["text"]["text"])
        out += [e["text"] for e in b.get("elements", []) if "text" in e]
    return "\n".join(out)


def assert_block_kit(post: dict) -> None:
    blocks = post["blocks"]
    assert blocks and len(blocks) <= 50 and blocks[0]["type"] == "header"
    assert blocks[0]["text"]["type"] == "plain_text" and len(blocks[0]["text"]["text"]) <= 150
    for b in blocks:
        assert b["type"] in {"header", "section", "context", "divider"}
        if b["type"] == "section":
            assert b["text"]["type"] == "mrkdwn" and len(b["text"]["text"]) <= 3000
    assert MSG_ID.search(post["text"]), post["text"]


def assert_no_token(*texts) -> None:
    for t in texts:
        assert TOKEN not in str(t) and "SECRET" not in str(t)


# --- run failures ------------------------------------------------------------------------------------------------

DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01")


@dg.asset(partitions_def=DAILY)
def exploding_prices() -> None:
    try:
        {}["BTC"]
    except KeyError as exc:
        raise ValueError("cannot price the ledger: no close for BTC") from exc


def test_a_failed_run_reaches_system_alerts_with_job_partition_step_error_chain_and_link(
        tmp_path, instance, slack, caplog):
    caplog.set_level(logging.DEBUG)
    wh_path = tmp_path / "warehouse.duckdb"
    sensor = make_run_failure_sensor(CFG)
    with dg.build_sensor_context(instance=instance, resources=resources(slack, wh_path)) as ctx:
        first = sensor.evaluate_tick(ctx)  # the first evaluation starts its cursor: runs before it are history
    result = dg.materialize([exploding_prices], partition_key="2026-03-01", instance=instance, raise_on_error=False)
    assert not result.success
    run_id = result.run_id
    with dg.build_sensor_context(instance=instance, cursor=first.cursor,
                                 resources=resources(slack, wh_path)) as ctx:
        res = sensor.evaluate_tick(ctx)
    (post,) = slack.posts
    assert post["channel"] == "#system-alerts" and post["auth"] == f"Bearer {TOKEN}"
    assert_block_kit(post)
    shown = post["text"] + "\n" + block_text(post)
    for expected in ("__ephemeral_asset_job__", "2026-03-01", "exploding_prices",
                     "ValueError: cannot price the ledger: no close for BTC", "KeyError",
                     f"http://127.0.0.1:3000/runs/{run_id}"):
        assert expected in shown, expected
    # queued durably first (at least once), then delivered in the same evaluation
    box = Warehouse(wh_path).outbox()
    assert box["kind"].tolist() == ["run_failure"] and box["delivered_at"].notna().all()
    # evaluated again: the same failure is not said twice
    with dg.build_sensor_context(instance=instance, cursor=res.cursor, resources=resources(slack, wh_path)) as ctx:
        sensor.evaluate_tick(ctx)
    assert len(slack.posts) == 1
    assert_no_token(caplog.text, box.to_json(), json.dumps(slack.posts[0]["blocks"]), slack.posts[0]["text"],
                    res.log_key, *[r.getMessage() for r in caplog.records])


@dg.asset
def checked_ledger() -> None:
    return None


def test_a_failing_error_check_alerts_once_until_it_passes_then_resolves(tmp_path, instance, slack):
    wh_path = tmp_path / "warehouse.duckdb"
    state = {"ok": False}

    @dg.asset_check(asset=checked_ledger, name="ledger_balances", blocking=False)
    def ledger_balances() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=state["ok"], severity=dg.AssetCheckSeverity.ERROR,
                                   description="cash + positions != equity for 3 cycle points",
                                   metadata={"cycle_points": 3})

    sensor = make_check_alert_sensor(CFG, set())

    def evaluate(cursor):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(slack, wh_path)) as ctx:
            return sensor.evaluate_tick(ctx)

    cursor = evaluate(None).cursor
    for ok in (False, False, True, True):
        state["ok"] = ok
        assert dg.materialize([checked_ledger, ledger_balances], instance=instance).success
        cursor = evaluate(cursor).cursor
    assert [p["channel"] for p in slack.posts] == ["#system-alerts", "#system-alerts"]
    failed, resolved = slack.posts
    assert "ledger_balances" in failed["text"] and "cash + positions != equity" in block_text(failed)
    assert "resolved" in (resolved["text"] + block_text(resolved)).lower()
    for p in slack.posts:
        assert_block_kit(p)


# --- trades, PANIC, reports -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traded_world(tmp_path_factory):
    """Two synthetic days, the engine run to 06:00 of day 1 (positions opened and stopped out; trade events on)."""
    world = prepared_world(tmp_path_factory.mktemp("slack"))
    run_tick(Warehouse(world.warehouse), engine_config(world.warehouse, world.config), until=at(1, "06:00"))
    return world


def test_a_trade_close_reaches_trades_with_its_ledger_numbers(traded_world, tmp_path, slack, instance):
    world = traded_world.copy(tmp_path / "w")
    wh = Warehouse(world.warehouse)
    res = deliver_all(world.warehouse, slack, instance)
    assert "0 failed" in res.skip_message
    closes = [p for p in slack.posts if " closed " in p["text"]]
    assert closes and {p["channel"] for p in slack.posts} <= {"#trades", "#system-alerts"}
    sells = wh.read_sql("SELECT trade_group_id, symbol, pnl_usd, exit_reason FROM paper_trades WHERE side = 'SELL'")
    assert len(closes) == len(sells)
    for s in sells.itertuples():
        (post,) = [p for p in closes if s.trade_group_id in p["text"]]
        assert post["channel"] == "#trades"
        assert_block_kit(post)
        money = f"{'-' if s.pnl_usd < 0 else '+'}${abs(s.pnl_usd):,.2f}"  # USD with 2 decimals, signed
        assert money in post["text"] and s.symbol in block_text(post)
        assert ("✅" if s.pnl_usd > 0 else "❌") in post["blocks"][0]["text"]["text"]
        assert {"stop_loss": "Stop Loss", "take_profit": "Take Profit", "trailing_stop": "Trailing Stop"}.get(
            s.exit_reason, "") in post["text"]


def test_panic_reaches_trades_with_its_triggers(tmp_path, base_raw, slack, instance):
    cfg = make_cfg(base_raw)
    sc = Scenario(cfg).flat("ETH", 100.0, T0 - 30 * MIN, T0 + 30 * MIN)
    sc.set_range(T0 + 10 * MIN, T0 + 20 * MIN, regime="PANIC", btc_vol_24h=0.13)
    sc.set_market(T0 + 10 * MIN, entered_panic=True)
    sc.run(T0, T0 + 20 * MIN)
    rows, _ = outbox_rows(sc.notes("panic"), cfg)
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    wh.queue_messages(rows, T0)
    deliver_all(tmp_path / "warehouse.duckdb", slack, instance)
    (post,) = slack.posts
    assert post["channel"] == "#trades"
    assert_block_kit(post)
    shown = post["text"] + "\n" + block_text(post)
    assert "PANIC" in shown and "new entries halted" in shown.lower()
    assert "vol_24h 13.00% ≥ 12.00%" in shown  # the crossed threshold, SPEC §14 panic.vol_24h = 0.12


def test_each_trading_report_reaches_reports(traded_world, tmp_path, slack, instance):
    world = traded_world.copy(tmp_path / "w")
    defs = build_definitions(world.env())
    job = defs.resolve_job_def("reports_job")
    tick = pd.Timestamp(at(1, "06:00"))
    for kinds in (["MORNING"], ["MIDDAY"], ["EVENING", "WEEKLY"]):
        cfg = {"ops": {"trading_report": {"config": {"reports": kinds, "scheduled_for": tick.isoformat()}}}}
        assert job.execute_in_process(run_config=cfg, instance=instance).success
    # one on demand (now: after every tick), then a catch-up after a gap: it starts at the last scheduled report,
    # not at the on-demand one
    assert job.execute_in_process(instance=instance).success
    cfg = {"ops": {"trading_report": {"config": {"scheduled_for": (tick + pd.Timedelta(hours=30)).isoformat(),
                                                 "catchup": True}}}}
    assert job.execute_in_process(run_config=cfg, instance=instance).success
    wh = Warehouse(world.warehouse)
    for r in wh.pending_messages(1000).itertuples():  # the trades were delivered before (another test shows them)
        if r.kind != "trading_report":
            wh.mark_delivered(r.message_id, pd.Timestamp.now(tz="UTC"))
    deliver_all(world.warehouse, slack, instance)
    reports = [p for p in slack.posts if p["channel"] == "#reports"]
    titles = [p["blocks"][0]["text"]["text"] for p in reports]
    for kind in ("MORNING", "MIDDAY", "EVENING", "WEEKLY", "CATCH-UP", "ON-DEMAND"):
        assert sum(kind.lower() in t.lower() for t in titles) == 1, (kind, titles)
    catchup = next(p for p in reports if "catch-up" in p["blocks"][0]["text"]["text"].lower())
    assert "EVENING" in block_text(catchup)  # it names the reports it replaces
    for p in reports:
        assert_block_kit(p)
        assert "Realised" in block_text(p) or "realised" in block_text(p).lower()
    log = wh.read_sql("SELECT report FROM report_log ORDER BY written_at")["report"].tolist()
    assert log == ["MORNING", "MIDDAY", "EVENING", "WEEKLY", "ON-DEMAND", "CATCH-UP"]
    catchup_row = wh.read_sql("SELECT period_start FROM report_log WHERE report = 'CATCH-UP'")["period_start"]
    assert catchup_row.iloc[0] == tick  # since the WEEKLY/EVENING of `tick`
    # the same tick again says nothing twice
    cfg = {"ops": {"trading_report": {"config": {"reports": ["MORNING"], "scheduled_for": tick.isoformat()}}}}
    assert job.execute_in_process(run_config=cfg, instance=instance).success
    assert len(wh.read_sql("SELECT * FROM report_log")) == 6


# --- delivery: errors, rate limit, no token --------------------------------------------------------------------


def queue_closes(world) -> list[str]:
    wh = Warehouse(world.warehouse)
    return wh.pending_messages(1000)["message_id"].tolist()


def test_a_slack_500_then_success_delivers_exactly_once(traded_world, tmp_path, slack, instance, caplog):
    world = traded_world.copy(tmp_path / "w")
    ids = queue_closes(world)
    slack.statuses = [500]
    first = deliver_all(world.warehouse, slack, instance)
    assert "1 failed" in first.skip_message
    second = deliver_all(world.warehouse, slack, instance)
    assert "0 failed, 0 still pending" in second.skip_message
    sent = [MSG_ID.search(p["text"]).group(1) for p in slack.posts]
    assert sorted(sent) == sorted(ids) and len(sent) == len(set(sent))  # every message exactly once
    box = Warehouse(world.warehouse).outbox().set_index("message_id")
    refused = MSG_ID.search(slack.errored[0]["text"]).group(1)
    assert box.loc[refused, "attempts"] == 2 and pd.isna(box.loc[refused, "last_error"])
    assert_no_token(first.skip_message, second.skip_message, caplog.text, box.to_json())


def test_the_rate_limit_queues_a_burst_instead_of_failing_it(traded_world, tmp_path, slack):
    world = traded_world.copy(tmp_path / "w")
    ids = queue_closes(world)
    trades = Warehouse(world.warehouse).pending_messages(1000)
    trades = trades[trades["channel"] == "#trades"]["message_id"].tolist()[:4]
    assert len(trades) == 4
    slack.per_channel_s = 1.0
    wh = Warehouse(world.warehouse)
    send = notifier(slack).send
    # a client that ignores the pacing meets Slack's 429: the channel is held for Retry-After, nothing fails
    res = deliver(wh, send, pacing=Pacing(min_interval_s=0.0), budget_s=1.5, only=set(trades))
    assert slack.limited and not res.failed and res.deferred
    assert set(res.delivered) | set(res.deferred) == set(trades)
    assert (wh.outbox().set_index("message_id").loc[res.deferred, "attempts"] == 0).all()
    # the next passes deliver the rest, in order, each message once
    while wh.undelivered_count() > len(ids) - len(trades):
        deliver(wh, send, pacing=Pacing(min_interval_s=1.05), budget_s=10.0, only=set(trades))
    sent = [MSG_ID.search(p["text"]).group(1) for p in slack.posts]
    assert sorted(sent) == sorted(trades) and len(set(sent)) == len(sent)


def test_without_a_token_the_messages_go_to_the_log_in_the_same_text(traded_world, tmp_path, caplog):
    world = traded_world.copy(tmp_path / "w")
    defs = build_definitions(world.env())
    assert isinstance(defs.resources["notifier"], LogNotifier)
    caplog.set_level(logging.INFO)
    wh = Warehouse(world.warehouse)
    box = wh.pending_messages(1000)
    res = deliver(wh, defs.resources["notifier"].send, pacing=Pacing(min_interval_s=0.0))
    assert len(res.delivered) == len(box) and not res.failed
    for r in box.itertuples():
        assert f"[{r.channel}] {html.unescape(r.text)} [msg {r.message_id}]" in caplog.text


def test_a_slack_outage_loses_nothing_and_the_next_pass_delivers_once(traded_world, tmp_path, slack, instance):
    world = traded_world.copy(tmp_path / "w")
    ids = queue_closes(world)
    with socket.socket() as s:  # a port nothing listens on: connection refused, as when Slack is unreachable
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/api/"
    down = SlackNotifier(slack=SlackApiResource(token=TOKEN, base_url=dead, timeout_s=2), channels=CHANNELS)
    wh = Warehouse(world.warehouse)
    res = deliver(wh, down.send, pacing=Pacing(min_interval_s=0.0))
    assert not res.delivered and len(res.failed) == len(ids) and res.pending == len(ids)
    box = wh.outbox()
    assert box["delivered_at"].isna().all() and (box["attempts"] == 1).all()
    assert box["last_error"].str.contains("SlackSendError").all()
    assert_no_token(box.to_json(), res.summary())
    deliver_all(world.warehouse, slack, instance)  # Slack is back
    sent = [MSG_ID.search(p["text"]).group(1) for p in slack.posts]
    assert sorted(sent) == sorted(ids)
