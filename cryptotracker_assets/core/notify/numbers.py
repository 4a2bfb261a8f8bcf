"""Numbers, times and user text for people (SPEC §0.1, §12.2; never imports dagster).

Every formatter takes what a JSON payload holds (float, int, numeric string, None) and never raises: a missing,
NaN or infinite value shows as ``n/a``. Money is float64 in the payload and rounded here only, for display. The
minus sign is the ASCII ``-`` everywhere (``-$12.30``, ``-1.50%``); a value that rounds to zero carries no sign.

- :func:`fmt_price`: 6 significant digits, positional (never an exponent), thousands separated:
  ``67123.456 → 67,123.5``, ``0.0000123456789 → 0.0000123457``, ``1.5 → 1.5`` (no trailing zeros).
- :func:`fmt_pct`: fractions in, percent out with 2 decimals: ``0.01234 → +1.23%``.
- :func:`fmt_usd`: 2 decimals with separators: ``1234.5 → $1,234.50``; signed: ``+$12.30`` / ``-$12.30``.
- :func:`escape`: Slack mrkdwn escaping of user data (``&``, ``<``, ``>``), so a ``<!channel>`` or a
  ``<http://x|y>`` in an operator's ``why`` can never ping or link.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

NA = "n/a"


def number(x: Any) -> float | None:
    """``x`` as a finite float, or None (missing, NaN, infinite, a bool or not a number)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt_price(x: Any, *, trailing_zeros: bool = False) -> str:
    """A price with 6 significant digits, positional, thousands separated (``67,123.5``; ``0.0000123457``);
    ``trailing_zeros`` keeps all six (``1.00000``: aligned table columns)."""
    v = number(x)
    if v is None:
        return NA
    if v == 0:
        return "0"
    try:
        d = Decimal(f"{v:.5e}" if trailing_zeros else f"{v:.6g}")
    except InvalidOperation:  # pragma: no cover - a finite float always has a .6g form
        return NA
    return f"{d:,f}"


def fmt_number(x: Any) -> str:
    """A plain number for people: an int with separators (``1,234``), a float like :func:`fmt_price`."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    return fmt_price(x)


def fmt_score(x: Any) -> str:
    """A model score (composite, AUC …) with 3 decimals."""
    v = number(x)
    return NA if v is None else f"{v:.3f}"


def _signed(body: str, negative: bool, signed: bool, zero: bool) -> str:
    if zero:
        return body
    if negative:
        return f"-{body}"
    return f"+{body}" if signed else body


def fmt_pct(fraction: Any, *, signed: bool = True) -> str:
    """A fraction as percent with 2 decimals: ``0.01234 → +1.23%`` (``1.23%`` unsigned); ``-0.015 → -1.50%``."""
    v = number(fraction)
    if v is None:
        return NA
    body = f"{abs(v) * 100:,.2f}"
    return _signed(body, v < 0, signed, float(body.replace(",", "")) == 0) + "%"


def fmt_usd(x: Any, *, signed: bool = False) -> str:
    """USD with 2 decimals: ``1234.5 → $1,234.50``, ``-3 → -$3.00``; signed: ``+$12.30`` / ``-$12.30``."""
    v = number(x)
    if v is None:
        return NA
    body = f"{abs(v):,.2f}"
    return _signed(f"${body}", v < 0, signed, float(body.replace(",", "")) == 0)


def fmt_hours(x: Any) -> str:
    """Hours with one decimal: ``5.25 → 5.2 h``."""
    v = number(x)
    return NA if v is None else f"{v:,.1f} h"


def fmt_duration(seconds: Any) -> str:
    """A span for people: ``45 min``, ``3 h 20 min``, ``2 d 3 h``."""
    v = number(seconds)
    if v is None or v < 0:
        return NA
    minutes = int(round(v / 60.0))
    d, rest = divmod(minutes, 1440)
    h, m = divmod(rest, 60)
    if d:
        return f"{d} d {h} h"
    return f"{h} h {m} min" if h else f"{m} min"


def parse_time(x: Any) -> datetime | None:
    """A payload time (ISO string with or without offset, ``… UTC`` suffix, or a datetime) as aware UTC; a naive
    value is UTC (SPEC §0.2); None when it is not a time."""
    if isinstance(x, datetime):
        t = x
    elif isinstance(x, str) and x.strip():
        s = x.strip()
        if s.endswith(" UTC"):
            s = s[:-4]
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        try:
            t = datetime.fromisoformat(s)
        except ValueError:
            return None
    else:
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def fmt_time(x: Any) -> str:
    """A time as ``YYYY-MM-DD HH:MM UTC``; ``n/a`` when missing; an unreadable value is shown escaped."""
    t = parse_time(x)
    if t is not None:
        return f"{t:%Y-%m-%d %H:%M} UTC"
    return NA if x is None or x == "" else escape(x)


def escape(text: Any) -> str:
    """Slack mrkdwn escaping of user data: ``&`` → ``&amp;``, ``<`` → ``&lt;``, ``>`` → ``&gt;`` (None → ``n/a``)."""
    if text is None:
        return NA
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain_label(text: Any) -> str:
    """User data for a ``plain_text`` object (a header): Slack does not parse it, but angle brackets are swapped
    for look-alikes anyway so no form of ``<!channel>`` ever reaches Slack from a title."""
    return NA if text is None else str(text).replace("<", "‹").replace(">", "›")


def fmt_value(key: str, value: Any) -> str:
    """Any payload value for a ``key: value`` line (mrkdwn-safe): ``*_usd`` as USD, ``*_pct`` as percent, times
    as times, numbers as numbers, lists joined, mappings as compact JSON; clipped to 300 characters."""
    if value is None:
        return NA
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if key.endswith("_usd"):
            return fmt_usd(value)
        if key.endswith("_pct"):
            return fmt_pct(value)
        return fmt_number(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        t = parse_time(value) if len(value) >= 16 and value[:4].isdigit() and value[4:5] == "-" else None
        return fmt_time(t) if t is not None else escape(clip(value, 300))
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list, tuple)) for v in value):
        return escape(clip(", ".join("n/a" if v is None else str(v) for v in value), 300)) or "none"
    try:
        return escape(clip(json.dumps(value, sort_keys=True, default=str), 300))
    except (TypeError, ValueError):
        return escape(clip(str(value), 300))


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with ``…`` when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
