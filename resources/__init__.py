"""Every external system as a Dagster resource with a real and an offline implementation."""

from .config import ProjectConfigResource
from .market_data import FilesMarketData, MarketDataSource, PolygonMarketData, SyntheticMarketData
from .notifier import LogNotifier, Notifier, SlackApiResource, SlackNotifier, SlackRateLimited, SlackSendError
from .warehouse import BarsIOManager, TableIOManager, WarehouseResource

__all__ = [
    "BarsIOManager",
    "FilesMarketData",
    "LogNotifier",
    "MarketDataSource",
    "Notifier",
    "PolygonMarketData",
    "ProjectConfigResource",
    "SlackApiResource",
    "SlackNotifier",
    "SlackRateLimited",
    "SlackSendError",
    "SyntheticMarketData",
    "TableIOManager",
    "WarehouseResource",
]
