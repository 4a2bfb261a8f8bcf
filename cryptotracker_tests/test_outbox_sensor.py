"""The notification outbox end to end (issue 10, item 3): what a tick wants to say is committed with its rows and
delivered later by the ``outbox_delivery_sensor`` through the real Slack client (a fake Slack speaking the wire
format), at least once: a SIGKILL between the commit and the delivery loses nothing, a SIGKILL between a send and
its delivered mark re-sends that one message only, every sent text carries its message id, a notifier that fails
fails no tick (the message stays queued with its error and attempt count), and a locked warehouse skips the
evaluation cleanly."""

from __future__ import annotations

import json
import multiprocessing as mp
import re
from collections import Counter

import pandas as pd
import pytest

import dagster as dg
from cryptotracker_assets.definitions import build_definitions
from cryptotracker_assets.services.engine_runner import run_tick
from cryptotracker_assets.services.outbox import deliver
from cryptotracker_assets.storage.warehouse import Warehouse
from cryptotracker_tests.engine_support import (DAYS, at, deliver_then_die, engine_config, hold_lock,
                                                hold_lock_for, prepared_world, tick_then_die)
from cryptotracker_tests.fakes.slack import FakeSlack
from resources import Notifier, SlackApiResource, SlackNotifier, WarehouseResource
from sensors.outbox import make_outbox_sensor

UNTIL = at(1, "06:00")  # day 1 from 00:00: seven positions opened and stopped out, a loss-streak pause
MSG_ID = re.compile(r" \[msg ([a-z_]+_\d{10}_[0-9a-f]{10})\]$")
SPAWN = mp.get_context("spawn")


@pytest.fixture(scope="module")
def base_world(tmp_path_factory):
    return prepared_world(tmp_path_factory.mktemp("outbox"))


@pytest.fixture()
def world(base_world, tmp_path):
    return base_world.copy(tmp_path / "w")


@pytest.fixture()
def slack(fixtures_dir):
    with FakeSlack.from_fixtures(fixtures_dir) as fake:
        yield fake


def evaluate(world, slack: FakeSlack, instance, lock_wait_s: float = 5.0):
    """One evaluation of the delivery sensor with the real Slack notifier on the fake Slack."""
    sensor = make_outbox_sensor(lock_wait_s=lock_wait_s, min_interval_s=0.0)
    with dg.build_sensor_context(instance=instance, resources={
            "warehouse": WarehouseResource(path=str(world.warehouse)),
            "notifier": SlackNotifier(slack=SlackApiResource(token="xoxb-test", base_url=slack.base_url),
                                      channels={"trades": "#trades", "alerts": "#system-alerts"})}) as ctx:
        return sensor.evaluate_tick(ctx)


def sent_ids(texts: list[str]) -> list[str]:
    ids = []
    for text in texts:
        m = MSG_ID.search(text)
        assert m is not None, f"a sent text without its message id: {text!r}"
        ids.append(m.group(1))
    return ids


def said(notes) -> Counter:
    """What the engine wanted to say to a channel: (kind, cycle point, trade group) of each note (TAKE signals are
    off by default: notifications.signals_enabled)."""
    return Counter((n["kind"], pd.Timestamp(n["cycle_point"]), n.get("trade_group_id"))
                   for n in notes if n.get("channel") is not None and n["kind"] != "signal")


def test_sigkill_between_commit_and_delivery_loses_no_message(base_world, world, tmp_path, slack, instance):
    # The same tick uninterrupted, for what the engine has to say.
    ref = base_world.copy(tmp_path / "ref")
    reference = run_tick(Warehouse(ref.warehouse), engine_config(ref.warehouse, ref.config), until=UNTIL)
    expected = said(reference.outputs.notifications)
    assert sum(expected.values()) == reference.messages >= 10
    assert {k for k, _, _ in expected} >= {"opened", "closed", "loss_streak_pause"}
    # The tick commits, then its process is killed before anything is sent.
    child = SPAWN.Process(target=tick_then_die, args=(str(world.warehouse), str(world.config), str(UNTIL)))
    child.start()
    child.join(120)
    assert child.exitcode == -9
    wh = Warehouse(world.warehouse)
    assert wh.engine_state()["cursor"] == UNTIL - pd.Timedelta(minutes=5)  # the tick committed
    assert wh.undelivered_count() == reference.messages
    # After the restart the sensor delivers every message, each text carrying its id.
    first = evaluate(world, slack, instance)
    assert f"{reference.messages} delivered, 0 failed, 0 still pending" in first.skip_message
    ids = sent_ids(slack.texts)
    assert len(ids) == len(set(ids)) == reference.messages
    box = wh.outbox().set_index("message_id")
    assert set(ids) == set(box.index) and box["delivered_at"].notna().all()
    assert (box["attempts"] == 1).all() and box["last_error"].isna().all()
    got = Counter()
    for text, mid in zip(slack.texts, ids):
        row = box.loc[mid]
        assert text == f"{row['text']} [msg {mid}]"
        tgid = json.loads(row["payload_json"]).get("trade_group_id")
        got[(row["kind"], pd.Timestamp(row["cycle_point"]), tgid)] += 1
        if tgid is not None:
            assert tgid in text
    assert got == expected  # every note the engine made, no more, no less
    assert {p["channel"] for p in slack.posts} == {"#trades"} and {p["auth"] for p in slack.posts} == {
        "Bearer xoxb-test"}
    # Nothing is sent twice.
    again = evaluate(world, slack, instance)
    assert "0 delivered" in again.skip_message and len(slack.posts) == reference.messages


def test_sigkill_between_a_send_and_its_mark_resends_that_message_only(world, tmp_path):
    wh = Warehouse(world.warehouse)
    queued = run_tick(wh, engine_config(world.warehouse, world.config), until=UNTIL).messages
    assert queued >= 10
    log = tmp_path / "received.txt"
    child = SPAWN.Process(target=deliver_then_die, args=(str(world.warehouse), str(log), 3))
    child.start()
    child.join(120)
    assert child.exitcode == -9
    before_restart = sent_ids(log.read_text().splitlines())
    assert len(before_restart) == 3
    assert wh.undelivered_count() == queued - 2  # the first two were marked; the third was sent, not marked
    restarted: list[str] = []
    result = deliver(wh, lambda key, message, channel: restarted.append(message.text))
    assert len(result.delivered) == queued - 2 and result.pending == 0 and not result.failed
    after = sent_ids(restarted)
    assert after[0] == before_restart[2]  # the oldest unmarked message first
    counts = Counter(before_restart + after)
    assert set(counts) == set(wh.outbox()["message_id"])  # every message delivered
    assert [m for m, n in counts.items() if n > 1] == [before_restart[2]]  # one duplicate: the killed send's
    assert max(counts.values()) == 2
    assert deliver(wh, lambda *a: pytest.fail("re-sent a delivered message")).delivered == []


class DownNotifier(Notifier):
    """A notifier whose every send raises (Slack unreachable)."""

    def send(self, channel_key: str, text: str, channel: str | None = None) -> None:
        raise RuntimeError("slack unreachable")


def with_notifier(defs: dg.Definitions, notifier: Notifier) -> dg.Definitions:
    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, sensors=defs.sensors,
                          schedules=defs.schedules, resources={**defs.resources, "notifier": notifier},
                          executor=defs.executor)


def test_a_failing_notifier_fails_no_tick_and_keeps_the_message_queued(world, fixtures_dir, instance):
    wh = Warehouse(world.warehouse)
    run_tick(wh, engine_config(world.warehouse, world.config), until=pd.Timestamp(DAYS[1], tz="UTC"))
    defs = with_notifier(build_definitions(world.env()), DownNotifier())
    # the engine's own Dagster job over the day of the trades, with a notifier that raises on every send
    r = defs.resolve_job_def("paper_engine_job").execute_in_process(partition_key=DAYS[1], instance=instance)
    assert r.success
    queued = wh.undelivered_count()
    assert queued >= 10 and wh.engine_state()["cursor"] == at(1, "23:55")
    rows_before = len(wh.read_sql("SELECT * FROM paper_trades"))
    with FakeSlack.from_fixtures(fixtures_dir, error="channel_not_found") as down:
        for attempt in (1, 2):
            res = evaluate(world, down, instance)  # never raises
            assert f"0 delivered, {queued} failed, {queued} still pending" in res.skip_message
            assert "channel_not_found" in res.skip_message
            box = wh.outbox()
            assert box["delivered_at"].isna().all() and (box["attempts"] == attempt).all()
            assert box["last_error"].str.contains("chat.postMessage to #trades failed: channel_not_found").all()
        assert len(down.refused) == 2 * queued and not down.posts
        refused_ids = sent_ids([p["text"] for p in down.refused])
        assert Counter(refused_ids) == Counter({m: 2 for m in box["message_id"]})
    # the ledger and the engine never saw the failures
    assert len(wh.read_sql("SELECT * FROM paper_trades")) == rows_before
    with FakeSlack.from_fixtures(fixtures_dir) as up:
        res = evaluate(world, up, instance)
        assert f"{queued} delivered, 0 failed, 0 still pending" in res.skip_message
        assert Counter(sent_ids(up.texts)) == Counter({m: 1 for m in box["message_id"]})
    box = wh.outbox()
    assert box["delivered_at"].notna().all() and box["last_error"].isna().all() and (box["attempts"] == 3).all()


def test_the_sensor_skips_cleanly_while_the_warehouse_is_locked(world, slack, instance):
    wh = Warehouse(world.warehouse)
    queued = run_tick(wh, engine_config(world.warehouse, world.config), until=UNTIL).messages
    held, release = SPAWN.Event(), SPAWN.Event()
    child = SPAWN.Process(target=hold_lock, args=(str(world.warehouse), held, release))
    child.start()
    try:
        assert held.wait(60)
        res = evaluate(world, slack, instance, lock_wait_s=0.3)
        assert res.skip_message.startswith("warehouse busy, delivery on the next evaluation")
        assert not res.run_requests and not slack.posts
    finally:
        release.set()
        child.join(60)
    assert child.exitcode == 0
    res = evaluate(world, slack, instance, lock_wait_s=0.3)
    assert f"{queued} delivered, 0 failed, 0 still pending" in res.skip_message
    assert len(slack.posts) == queued and wh.undelivered_count() == 0


def test_a_lock_taken_between_a_send_and_its_mark_delays_the_mark_and_sends_nothing_twice(world, slack, instance):
    """The sensor gives up on a busy warehouse before a pass (``lock_wait_s``), but a message once sent is marked
    delivered even when another process holds the file longer than that: waiting is better than a re-send."""
    wh = Warehouse(world.warehouse)
    queued = run_tick(wh, engine_config(world.warehouse, world.config), until=UNTIL).messages
    held = SPAWN.Event()
    child = SPAWN.Process(target=hold_lock_for, args=(str(world.warehouse), 1.5, held))

    def meanwhile(post):  # another process takes the file while the first message is being sent
        if len(slack.posts) == 1:
            child.start()
            assert held.wait(60)

    slack.on_post = meanwhile
    res = evaluate(world, slack, instance, lock_wait_s=0.3)
    child.join(60)
    assert child.exitcode == 0
    assert f"{queued} delivered, 0 failed, 0 still pending" in res.skip_message
    again = evaluate(world, slack, instance, lock_wait_s=0.3)
    assert "0 delivered" in again.skip_message
    ids = sent_ids(slack.texts)
    assert len(ids) == len(set(ids)) == queued  # each message sent once
