"""Partition definitions. OHLC and every downstream daily asset are partitioned by UTC day."""

from __future__ import annotations

import dagster as dg

# Calendar anchor of the daily partitions (not a trading rule): early enough for the real 2017–2018 exchange
# candles in ../shared/data and for data.backfill_d.1d (3650 days) of history.
PARTITIONS_START = "2016-01-01"

# end_offset=1 includes today's (still filling) partition, which the incremental schedules update.
daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITIONS_START, timezone="UTC", end_offset=1)
