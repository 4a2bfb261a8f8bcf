"""Notifications: one resource; Slack when SLACK_BOT_TOKEN is set, otherwise the log (SPEC §12)."""

from __future__ import annotations

import logging

import dagster as dg
from pydantic import PrivateAttr

CHANNEL_KEYS = ("trades", "reports", "alerts", "signals")


class Notifier(dg.ConfigurableResource):
    """Send a message to a channel key of ``notifications.channels`` (trades, reports, alerts, signals)."""

    def send(self, channel_key: str, text: str, channel: str | None = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def alert(self, text: str, channel: str | None = None) -> None:
        self.send("alerts", text, channel)


class LogNotifier(Notifier):
    """Offline notifier: messages go to the Dagster log (and are kept in memory for tests)."""

    _sent: list = PrivateAttr(default_factory=list)

    def send(self, channel_key: str, text: str, channel: str | None = None) -> None:
        if channel_key not in CHANNEL_KEYS:
            raise ValueError(f"unknown notification channel key {channel_key!r}")
        self._sent.append((channel_key, channel, text))
        dg.get_dagster_logger("cryptotracker.notify").log(
            logging.WARNING if channel_key == "alerts" else logging.INFO, f"[{channel or channel_key}] {text}"
        )

    @property
    def sent(self) -> list:
        return list(self._sent)


class SlackNotifier(Notifier):
    """Slack Web API ``chat.postMessage`` through slack_sdk; the token comes from EnvVar("SLACK_BOT_TOKEN")."""

    token: str
    base_url: str = "https://slack.com/api/"
    channels: dict[str, str] = {}

    def send(self, channel_key: str, text: str, channel: str | None = None) -> None:
        from slack_sdk import WebClient
        from slack_sdk.errors import SlackApiError

        if channel_key not in CHANNEL_KEYS:
            raise ValueError(f"unknown notification channel key {channel_key!r}")
        target = channel or self.channels.get(channel_key) or f"#{channel_key}"
        client = WebClient(token=self.token, base_url=self.base_url)
        try:
            client.chat_postMessage(channel=target, text=text)
        except SlackApiError as exc:  # the token never appears in the message
            raise RuntimeError(f"slack: chat.postMessage to {target} failed: {exc.response.get('error')}") from None
