"""Notifications: one resource; Slack through dagster-slack's ``SlackResource`` when SLACK_BOT_TOKEN is set,
otherwise the log, in the same text (SPEC §12).

A message is a :class:`~cryptotracker_assets.core.notify.Message` (Block Kit blocks and a plain-text fallback).
The Slack notifier raises :class:`SlackRateLimited` on HTTP 429 (with Slack's Retry-After) and
:class:`SlackSendError` on any other failure; neither carries the token (slack_sdk sends it only as a header), and
the outbox keeps the message queued either way."""

from __future__ import annotations

import html
import logging

import dagster as dg
from dagster_slack import SlackResource
from pydantic import PrivateAttr
from slack_sdk import WebClient

from cryptotracker_assets.core.notify import Message

CHANNEL_KEYS = ("trades", "reports", "alerts", "signals")
SLACK_API = "https://slack.com/api/"


class SlackSendError(RuntimeError):
    """A post Slack refused or could not take (names the channel and Slack's error, never the token)."""


class SlackRateLimited(SlackSendError):
    """HTTP 429: Slack asks to wait ``retry_after_s`` seconds before posting to this channel again."""

    def __init__(self, channel: str, retry_after_s: float):
        super().__init__(f"slack: rate limited on {channel}, retry after {retry_after_s:g} s")
        self.channel = channel
        self.retry_after_s = retry_after_s


def as_message(message: Message | str) -> Message:
    return message if isinstance(message, Message) else Message(text=str(message), blocks=())


class Notifier(dg.ConfigurableResource):
    """Send a message to a channel key of ``notifications.channels`` (trades, reports, alerts, signals)."""

    def send(self, channel_key: str, message: Message | str, channel: str | None = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def alert(self, text: str, channel: str | None = None) -> None:
        self.send("alerts", text, channel)


def check_key(channel_key: str) -> None:
    if channel_key not in CHANNEL_KEYS:
        raise ValueError(f"unknown notification channel key {channel_key!r}")


class LogNotifier(Notifier):
    """Offline notifier: messages go to the Dagster log in their plain-text fallback as Slack would show it (entities
    unescaped), and are kept in memory for tests."""

    _sent: list = PrivateAttr(default_factory=list)

    def send(self, channel_key: str, message: Message | str, channel: str | None = None) -> None:
        check_key(channel_key)
        text = html.unescape(as_message(message).text)  # as Slack shows it: "&lt;" is "<" to a reader
        self._sent.append((channel_key, channel, text))
        dg.get_dagster_logger("cryptotracker.notify").log(
            logging.WARNING if channel_key == "alerts" else logging.INFO, f"[{channel or channel_key}] {text}")

    @property
    def sent(self) -> list:
        return list(self._sent)


class SlackApiResource(SlackResource):
    """dagster-slack's ``SlackResource`` with the Web API address as a field (the stock one has only ``token``):
    tests point it at a fake Slack on 127.0.0.1. The client does not retry by itself: the outbox retries, and
    honours Retry-After."""

    base_url: str = SLACK_API
    timeout_s: int = 10

    def get_client(self) -> WebClient:
        return WebClient(token=self.token, base_url=self.base_url, timeout=self.timeout_s, retry_handlers=[])


class SlackNotifier(Notifier):
    """``chat.postMessage`` through the ``SlackResource``'s client: Block Kit blocks with the plain-text
    fallback; ``channels`` maps the channel keys to channel names (from ``notifications.channels``)."""

    slack: SlackResource
    channels: dict[str, str] = {}

    def send(self, channel_key: str, message: Message | str, channel: str | None = None) -> None:
        from slack_sdk.errors import SlackApiError

        check_key(channel_key)
        msg = as_message(message)
        target = channel or self.channels.get(channel_key) or f"#{channel_key}"
        kwargs = {"blocks": list(msg.blocks)} if msg.blocks else {}
        try:
            self.slack.get_client().chat_postMessage(channel=target, text=msg.text, **kwargs)
        except SlackApiError as exc:
            response = exc.response
            if getattr(response, "status_code", None) == 429:
                headers = {k.lower(): v for k, v in (getattr(response, "headers", None) or {}).items()}
                raw = headers.get("retry-after")
                value = raw[0] if isinstance(raw, list) else raw
                raise SlackRateLimited(target, float(value) if value else 1.0) from None
            error = response.get("error") if hasattr(response, "get") else None
            status = getattr(response, "status_code", "?")
            raise SlackSendError(f"slack: chat.postMessage to {target} failed: {error or 'no error field'} "
                                 f"(HTTP {status})") from None
        except Exception as exc:  # connection refused, timeout: the message stays queued
            raise SlackSendError(f"slack: chat.postMessage to {target} failed: {type(exc).__name__}") from None
