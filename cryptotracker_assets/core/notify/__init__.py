"""Slack messages for people from the outbox's notifications (SPEC §12): Block Kit blocks with a plain-text
fallback, per notification kind. Pure formatting: never imports dagster or slack_sdk (the notifier resource posts
:meth:`Message.payload`).

- :mod:`.numbers`: prices (6 significant digits), percentages (fractions in), USD, times, mrkdwn escaping.
- :mod:`.blocks`: :class:`Message`, the block builders and the split rule (Slack's size limits).
- :mod:`.render`: :func:`render` (kind + payload → messages), with the layouts of :mod:`.render_trades` (engine
  notes, signals), :mod:`.render_reports` (trading report, retraining, shadow summary) and :mod:`.render_ops`
  (thresholds, models, pipeline health, run failures, checks).
"""

from __future__ import annotations

from collections.abc import Sequence

from .blocks import BLOCK_TYPES, BLOCKS_MAX, HEADER_MAX, SECTION_MAX, TEXT_MAX, Draft, Message, compose
from .numbers import escape, fmt_duration, fmt_hours, fmt_number, fmt_pct, fmt_price, fmt_time, fmt_usd
from .render import RENDERERS, render
from .render_trades import EXIT_LABELS, exit_label

__all__: Sequence[str] = (
    "BLOCK_TYPES",
    "BLOCKS_MAX",
    "EXIT_LABELS",
    "HEADER_MAX",
    "RENDERERS",
    "SECTION_MAX",
    "TEXT_MAX",
    "Draft",
    "Message",
    "compose",
    "escape",
    "exit_label",
    "fmt_duration",
    "fmt_hours",
    "fmt_number",
    "fmt_pct",
    "fmt_price",
    "fmt_time",
    "fmt_usd",
    "render",
)
