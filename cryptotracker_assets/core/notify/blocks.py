"""Slack messages: Block Kit blocks plus a plain-text fallback, and the split rule (never imports dagster or
slack_sdk; the notifier posts :meth:`Message.payload` with ``chat.postMessage``).

Only four block types are used: ``header`` (``plain_text``), ``section`` (``mrkdwn`` text, no fields),
``context`` (mrkdwn elements) and ``divider``. A renderer builds a :class:`Draft` (title, one-line summary, body
blocks, footer context); :func:`compose` turns it into messages.

**Split rule** (Slack's limits, so a post is never refused for its size):

- a section's mrkdwn text is at most 3,000 characters: longer text is split at line boundaries into several
  sections, and a single line longer than that is cut hard (never inside an ``&amp;``-style entity); a code block
  is split the same way with each piece fenced again;
- a header's plain text is at most 150 characters (cut with ``…``);
- a context block has at most 10 elements;
- a message has at most 50 blocks: the header, up to 48 body blocks and the footer context. A longer body becomes
  n messages, each with the same header suffixed ``(k/n)`` and its own footer;
- the plain-text fallback (``text``) of each message is the summary line and that message's section texts, cut to
  3,000 characters with ``…`` (the blocks carry the detail). With a ``message_id`` it ENDS with
  `` [msg {message_id}]``, or `` [msg {message_id} {k}/{n}]`` for part k of n, and the footer shows the id.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .numbers import clip, plain_label

SECTION_MAX = 3000
HEADER_MAX = 150
TEXT_MAX = 3000
BLOCKS_MAX = 50
CONTEXT_ELEMENTS_MAX = 10
BLOCK_TYPES = ("header", "section", "context", "divider")
FENCE = "```"


@dataclass(frozen=True)
class Message:
    """One Slack post: ``text`` is the plain-text fallback (notifications, screen readers; user data escaped),
    ``blocks`` the Block Kit layout."""

    text: str
    blocks: tuple[dict, ...]

    def payload(self) -> dict:
        """``{"text": …, "blocks": […]}`` as ``chat.postMessage`` takes it (a copy: the message stays frozen)."""
        return {"text": self.text, "blocks": copy.deepcopy(list(self.blocks))}


@dataclass
class Draft:
    """What a renderer says, before the split: ``title`` (plain text, the header), ``summary`` (mrkdwn, the first
    line of the fallback), ``body`` (section / divider / context blocks, each within Slack's limits) and
    ``footer`` (context elements repeated on every part, before the message id)."""

    title: str
    summary: str
    body: list[dict] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)

    def add(self, text: str) -> "Draft":
        """Append ``text`` as one or more sections (split at line boundaries; nothing for blank text)."""
        self.body.extend(sections(text))
        return self

    def add_code(self, text: str) -> "Draft":
        """Append ``text`` as fenced code block sections (escaped by the caller)."""
        self.body.extend(code_sections(text))
        return self

    def divider(self) -> "Draft":
        self.body.append(divider())
        return self


# --- blocks ------------------------------------------------------------------------------------------------------


def header(text: str) -> dict:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(plain_label(text), HEADER_MAX),
                                       "emoji": True}}


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(elements: Sequence[str]) -> dict:
    """A context block of at most 10 mrkdwn elements (the tail is joined into the tenth)."""
    items = [e for e in elements if e]
    if len(items) > CONTEXT_ELEMENTS_MAX:
        items = items[: CONTEXT_ELEMENTS_MAX - 1] + [" · ".join(items[CONTEXT_ELEMENTS_MAX - 1:])]
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(e, SECTION_MAX)} for e in items]}


def divider() -> dict:
    return {"type": "divider"}


# --- the split rule ----------------------------------------------------------------------------------------------


def cut(text: str, limit: int, mark: str = "…") -> str:
    """``text`` cut to at most ``limit`` characters (ending with ``mark``), never inside an ``&…;`` entity."""
    if len(text) <= limit:
        return text
    keep = limit - len(mark)
    return text[: _entity_safe(text, keep)] + mark


def _entity_safe(text: str, pos: int) -> int:
    """``pos``, moved back to the ``&`` when it would cut an escaped entity (``&amp;`` ``&lt;`` ``&gt;``) in two."""
    amp = text.rfind("&", max(pos - 4, 0), pos)
    if amp != -1 and ";" not in text[amp:pos] and text.find(";", amp) in range(pos, amp + 5):
        return amp
    return pos


def split_text(text: str, limit: int = SECTION_MAX) -> list[str]:
    """``text`` in chunks of at most ``limit`` characters, split at line boundaries; a longer line is cut hard.
    Blank chunks are dropped (Slack refuses an empty section)."""
    pieces: list[str] = []
    for line in text.split("\n"):
        while len(line) > limit:
            at = _entity_safe(line, limit) or limit
            pieces.append(line[:at])
            line = line[at:]
        pieces.append(line)
    chunks: list[str] = []
    cur: str | None = None
    for p in pieces:
        if cur is None:
            cur = p
        elif len(cur) + 1 + len(p) <= limit:
            cur = f"{cur}\n{p}"
        else:
            chunks.append(cur)
            cur = p
    if cur is not None:
        chunks.append(cur)
    return [c.strip("\n") for c in chunks if c.strip()]


def sections(text: str) -> list[dict]:
    """``text`` as sections of at most 3,000 characters each."""
    return [section(c) for c in split_text(text, SECTION_MAX)]


def code_sections(text: str) -> list[dict]:
    """``text`` as fenced code blocks of at most 3,000 characters each (a triple backtick inside is defused)."""
    body = text.replace(FENCE, "ˋˋˋ")
    inner = SECTION_MAX - 2 * (len(FENCE) + 1)
    return [section(f"{FENCE}\n{c}\n{FENCE}") for c in split_text(body, inner)]


def _trim(blocks: list[dict]) -> list[dict]:
    """A part's body without leading or trailing dividers."""
    while blocks and blocks[0]["type"] == "divider":
        blocks = blocks[1:]
    while blocks and blocks[-1]["type"] == "divider":
        blocks = blocks[:-1]
    return blocks


def _chunks(body: list[dict], size: int) -> list[list[dict]]:
    parts: list[list[dict]] = []
    for i in range(0, len(body), size):
        part = _trim(body[i:i + size])
        if part:
            parts.append(part)
    return parts or [[]]


def compose(draft: Draft, message_id: str | None = None) -> list[Message]:
    """The messages of ``draft`` under the split rule (module docstring)."""
    body: list[dict] = []
    for b in draft.body:  # a renderer's oversized section is split here rather than refused by Slack
        if b.get("type") == "section" and len(b["text"]["text"]) > SECTION_MAX:
            body.extend(sections(b["text"]["text"]))
        else:
            body.append(b)
    has_footer = bool(draft.footer) or message_id is not None
    parts = _chunks(_trim(body), BLOCKS_MAX - 1 - int(has_footer))
    n = len(parts)
    out = []
    for k, part in enumerate(parts, start=1):
        tag = f" ({k}/{n})" if n > 1 else ""
        title = clip(plain_label(draft.title), HEADER_MAX - len(tag)) + tag
        foot = list(draft.footer)
        suffix = ""
        if message_id is not None:
            foot.append(f"msg `{message_id}`" + (f" · part {k}/{n}" if n > 1 else ""))
            suffix = f" [msg {message_id}{f' {k}/{n}' if n > 1 else ''}]"
        blocks = [header(title), *part] + ([context(foot)] if foot else [])
        out.append(Message(text=fallback(draft.summary + tag, part, TEXT_MAX - len(suffix), draft.footer) + suffix,
                           blocks=tuple(blocks)))
    return out


def fallback(summary: str, blocks: Iterable[dict], limit: int = TEXT_MAX, footer: Iterable[str] = ()) -> str:
    """The plain-text fallback of a part: its summary line, its section texts and the footer (trade id, times:
    what people search Slack for), cut to ``limit``."""
    lines = [summary] + [b["text"]["text"] for b in blocks if b.get("type") == "section"]
    foot = " · ".join(footer)
    return cut("\n".join(lines + ([foot] if foot else [])), limit)
