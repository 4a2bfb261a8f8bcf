"""The warehouse's schema version (issue 14): a new file records every forward migration once; a file written
before versions were recorded (the old one-row engine state, unnumbered config versions, no operators' tables) is
brought to the current layout keeping its rows; re-opening applies nothing; a file from a newer cryptotracker is
refused naming both versions, untouched."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from cryptotracker_assets.storage.migrations import LATEST, MIGRATIONS
from cryptotracker_assets.storage.warehouse import Warehouse, WarehouseError


def versions(path) -> list[int]:
    con = duckdb.connect(str(path))
    try:
        return [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]
    finally:
        con.close()


def test_a_new_warehouse_records_every_migration_once(tmp_path):
    path = tmp_path / "w.duckdb"
    Warehouse(path).engine_state()
    assert versions(path) == list(range(1, LATEST + 1)) == [m.version for m in MIGRATIONS]
    Warehouse(path).engine_state()  # a second process opening it applies nothing
    assert versions(path) == list(range(1, LATEST + 1))


def test_a_warehouse_from_before_versions_is_migrated_keeping_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    # issue 9's layout: one engine_state row with an id; unnumbered config versions; no operators' tables
    con.execute("CREATE TABLE engine_state (id BIGINT, cursor TIMESTAMPTZ, state_json VARCHAR, watermark TIMESTAMPTZ, "
                "config_version BIGINT, committed_at TIMESTAMPTZ, ticks BIGINT)")
    con.execute("INSERT INTO engine_state VALUES (1, '2026-03-02 13:55:00+00', '{}', '2026-03-02 13:59:00+00', 0, "
                "'2026-03-02 14:00:01+00', 42)")
    con.execute("CREATE TABLE config_versions (config_version BIGINT NOT NULL, fingerprint VARCHAR NOT NULL, "
                "source VARCHAR, values_json VARCHAR NOT NULL, recorded_at TIMESTAMPTZ NOT NULL)")
    con.execute("INSERT INTO config_versions VALUES (0, 'f1', 'config.yaml', '{}', now())")
    con.close()
    wh = Warehouse(path)
    state = wh.engine_state()
    assert state["day"] == pd.Timestamp("2026-03-02", tz="UTC") and state["ticks"] == 42
    assert state["cursor"] == pd.Timestamp("2026-03-02 13:55", tz="UTC")
    assert versions(path) == list(range(1, LATEST + 1))
    assert wh.read_sql("SELECT count(*) AS n FROM config_versions_unversioned")["n"].iloc[0] == 1
    assert wh.open_check_alerts().empty and wh.last_report() is None  # the operators' tables exist


def test_a_warehouse_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "new.duckdb"
    Warehouse(path).engine_state()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())", [LATEST + 1])
    con.close()
    with pytest.raises(WarehouseError, match=rf"schema version {LATEST + 1}, newer than this cryptotracker's "
                                             rf"{LATEST}: upgrade"):
        Warehouse(path).engine_state()
    assert versions(path) == [*range(1, LATEST + 1), LATEST + 1]
