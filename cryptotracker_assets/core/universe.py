"""The coin universe and the one ``tier(symbol)`` mapping (SPEC §1)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from .config import Config, Tier

SYMBOL_RE = re.compile(r"^[A-Z0-9]+(-[A-Z0-9]+)?$")


class UnknownSymbolError(KeyError):
    """A symbol that is not in the universe (there is no default tier)."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0])


@dataclass(frozen=True)
class Universe:
    """Symbols with their tier, ticker and active flag, in config order (tiers large → memecoin)."""

    tiers: dict[str, Tier]
    inactive: frozenset[str]
    market_symbol: str
    ticker_template: str

    @classmethod
    def from_config(cls, cfg: Config) -> "Universe":
        u = cfg.universe
        tiers: dict[str, Tier] = {}
        for tier in (Tier.LARGE_CAP, Tier.MID_CAP, Tier.SMALL_CAP, Tier.MEMECOIN):
            for symbol in getattr(u, tier.value):
                if not SYMBOL_RE.match(symbol):
                    raise ValueError(f"universe.{tier.value}: invalid symbol {symbol!r}")
                tiers[symbol] = tier
        return cls(
            tiers=tiers,
            inactive=frozenset(u.inactive),
            market_symbol=u.market_symbol,
            ticker_template=u.polygon_ticker,
        )

    def tier(self, symbol: str) -> Tier:
        """The tier of ``symbol``; raises :class:`UnknownSymbolError` for a symbol outside the universe."""
        try:
            return self.tiers[symbol]
        except KeyError:
            raise UnknownSymbolError(f"unknown symbol {symbol!r}: not in the universe (universe.* in the config)") from None

    def check(self, symbols: list[str] | tuple[str, ...]) -> list[str]:
        """Return ``symbols`` unchanged after checking each is in the universe."""
        for s in symbols:
            self.tier(s)
        return list(symbols)

    @property
    def symbols(self) -> list[str]:
        return list(self.tiers)

    @property
    def active_symbols(self) -> list[str]:
        return [s for s in self.tiers if s not in self.inactive]

    def ingest_symbols(self, held: Iterable[str] = ()) -> list[str]:
        """The symbols to ingest and heal, in universe order (SPEC §1): every active symbol, plus each inactive one
        in ``held`` (symbols with an open position or a pending order), so that position is still exited as its bars
        arrive. A held symbol outside the universe raises :class:`UnknownSymbolError`."""
        held = set(held)
        for s in sorted(held - set(self.tiers)):
            raise UnknownSymbolError(f"{s!r} holds an open position or pending order but is not in the universe: "
                                     f"keep it in its tier list (and in universe.inactive) until it is flat")
        return [s for s in self.tiers if s not in self.inactive or s in held]

    def is_active(self, symbol: str) -> bool:
        self.tier(symbol)
        return symbol not in self.inactive

    def polygon_ticker(self, symbol: str) -> str:
        self.tier(symbol)
        return self.ticker_template.format(symbol=symbol)

    def to_frame(self) -> pd.DataFrame:
        """The ``universe`` table: symbol, tier, polygon_ticker, active."""
        return pd.DataFrame(
            {
                "symbol": self.symbols,
                "tier": [self.tiers[s].value for s in self.symbols],
                "polygon_ticker": [self.polygon_ticker(s) for s in self.symbols],
                "active": [s not in self.inactive for s in self.symbols],
            }
        )


def tier(cfg: Config, symbol: str) -> Tier:
    """``tier(symbol)`` under ``cfg`` (SPEC §1): the only symbol → tier mapping."""
    return Universe.from_config(cfg).tier(symbol)
