"""Step retries (issue 14): transient errors (a warehouse lock held past its wait, the network) are retried by the
op's RetryPolicy with jitter; data and config errors are final (``dg.Failure(allow_retries=False)``) — one attempt,
the error named; the instance retries whole runs only when their process died."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from cryptotracker_assets.assets.retries import TRANSIENT_RETRY, data_errors_are_final
from cryptotracker_assets.core.ohlc import OhlcInputError
from cryptotracker_assets.definitions import build_definitions
from cryptotracker_assets.storage.base import WarehouseLockedError
from cryptotracker_tests.conftest import PROJECT_ROOT

FAST = dg.RetryPolicy(max_retries=3, delay=0.05, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def flaky_asset(errors: list[Exception], attempts: list[int]):
    @dg.asset(retry_policy=FAST)
    @data_errors_are_final
    def flaky(context) -> int:
        attempts.append(context.retry_number)
        if errors:
            raise errors.pop(0)
        return 1

    return flaky


def test_a_lock_is_retried_until_it_is_free(instance):
    attempts: list[int] = []
    locked = WarehouseLockedError("warehouse w.duckdb is locked by another process (PID 4242)")
    result = dg.materialize([flaky_asset([locked, locked], attempts)], instance=instance)
    assert result.success and attempts == [0, 1, 2]


def test_a_data_error_is_final_and_named(instance):
    attempts: list[int] = []
    bad = OhlcInputError("ohlc_1m 2026-03-01 BTC row 17: high < low")
    result = dg.materialize([flaky_asset([bad, bad], attempts)], instance=instance, raise_on_error=False)
    assert not result.success and attempts == [0]  # no retry hides a data error
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "OhlcInputError: ohlc_1m 2026-03-01 BTC row 17: high < low" in failure.step_failure_data.error.to_string()


def test_the_network_and_lock_prone_steps_carry_the_retry_policy_and_runs_retry_only_when_their_process_died(
        tmp_env):
    defs = build_definitions(tmp_env)
    for name in ("ohlc_1m", "paper_engine", "data_gaps"):
        policy = defs.resolve_assets_def(name if name != "paper_engine" else "paper_trades").op.retry_policy
        assert policy == TRANSIENT_RETRY and policy.jitter == dg.Jitter.PLUS_MINUS
    for instance_file in ("dagster.yaml", "dagster.postgres.yaml"):
        conf = yaml.safe_load(Path(PROJECT_ROOT / instance_file).read_text())
        assert conf["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}
        assert conf["run_monitoring"]["enabled"] is True
        assert {"key": "cryptotracker/engine", "limit": 1} in conf["concurrency"]["runs"]["tag_concurrency_limits"]
