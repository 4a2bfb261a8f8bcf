"""Identifiers (SPEC §0.3): ``trade_group_id`` of a trade group and ``scan_id`` of a scan decision."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..common import utc
from ..config import Strategy
from ..universe import SYMBOL_RE

# SPEC §0.3: the longest allowed trade_group_id (a format rule, not a tunable).
MAX_TRADE_GROUP_ID_LEN = 36
# Hex digits of the SHA-1 kept in a trade_group_id (SPEC §0.3).
_HASH_HEX = 4
TRADE_GROUP_ID_RE = re.compile(
    r"^(?P<strategy>DCA|SWING|CHANNEL)_(?P<symbol>[A-Z0-9]+(?:-[A-Z0-9]+)?)_(?P<stamp>\d{12})_(?P<hash>[0-9a-f]{4})$"
)
SCAN_ID_RE = re.compile(r"^(?P<strategy>DCA|SWING|CHANNEL)_(?P<symbol>[A-Z0-9]+(?:-[A-Z0-9]+)?)_(?P<stamp>\d{10})$")


def trade_group_id(strategy: Strategy | str, symbol: str, entry_time: Any) -> str:
    """``{STRATEGY}_{SYMBOL}_{yymmddHHMMSS}_{xxxx}`` of entry time E (UTC); xxxx = first 4 hex of
    SHA-1(``STRATEGY|SYMBOL|YYYY-MM-DDTHH:MM:SSZ``).

    Raises ``ValueError`` for an unknown strategy, a malformed symbol, a naive/non-UTC or sub-second E, and for an
    id longer than 36 characters (never truncated: a cut id would no longer match its hash or be unique).
    """
    s = Strategy.parse(strategy).value
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
        raise ValueError(f"invalid symbol {symbol!r}")
    e = utc(entry_time, "entry time")
    if e != e.floor("s"):
        raise ValueError(f"entry time {e} is not a whole second (E is a bar open time)")
    iso = e.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha1(f"{s}|{symbol}|{iso}".encode()).hexdigest()[:_HASH_HEX]
    tgid = f"{s}_{symbol}_{e.strftime('%y%m%d%H%M%S')}_{digest}"
    if len(tgid) > MAX_TRADE_GROUP_ID_LEN:
        raise ValueError(
            f"trade_group_id {tgid!r} has {len(tgid)} characters (> {MAX_TRADE_GROUP_ID_LEN}): symbol {symbol!r} "
            f"is too long for the SPEC §0.3 format"
        )
    return tgid


def scan_id(strategy: Strategy | str, symbol: str, cycle_point: Any) -> str:
    """``{STRATEGY}_{SYMBOL}_{yymmddHHMM}`` of the cycle point T (UTC, whole minute) = ``setup_id``."""
    s = Strategy.parse(strategy).value
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol):
        raise ValueError(f"invalid symbol {symbol!r}")
    t = utc(cycle_point, "cycle point")
    if t != t.floor("min"):
        raise ValueError(f"cycle point {t} is not a whole minute")
    return f"{s}_{symbol}_{t.strftime('%y%m%d%H%M')}"
