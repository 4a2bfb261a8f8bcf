"""Child processes of the model tests (multiprocessing "spawn" targets): a training that dies right after its model
was written and before the pointer swap, and one that dies in the middle of writing the model's files."""

from __future__ import annotations

import os
import signal

import pandas as pd


def train_then_die(warehouse: str, models: str, mode: str) -> None:
    from pathlib import Path

    from cryptotracker_assets.core.config import Strategy, load_config
    from cryptotracker_assets.core.ml import store
    from cryptotracker_assets.services.models import promote, train_candidate
    from cryptotracker_assets.storage.warehouse import Warehouse

    cfg = load_config(None)
    wh = Warehouse(warehouse)
    if mode == "mid_write":  # SIGKILL after the first model file was written (and fsynced)
        real = store._write_file  # noqa: SLF001 - the test's crash point

        def write_then_die(path, data):
            real(path, data)
            os.kill(os.getpid(), signal.SIGKILL)

        store._write_file = write_then_die  # noqa: SLF001
    run = train_candidate(wh, cfg, Strategy.DCA, Path(models), pd.Timestamp("2025-03-01 10:00", tz="UTC"))
    if mode == "before_swap":  # the model is stored; the process dies before the pointer moves
        os.kill(os.getpid(), signal.SIGKILL)
    promote(wh, run, cfg, Path(models), who="child", why="never reached", now=pd.Timestamp.now(tz="UTC"))
