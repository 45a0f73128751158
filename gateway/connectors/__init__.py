"""Connectors: the catalog of partners and datasets, and the fetchers behind them.

- :mod:`gateway.connectors.catalog` — loads and validates ``connectors/*.yaml`` into the
  specs of :mod:`gateway.vocabulary`;
- :mod:`gateway.connectors.base` — the :class:`Connector` protocol and shared rules;
- :mod:`gateway.connectors.file` — JSONL files (the demo deployment);
- :mod:`gateway.connectors.http` — the provider's REST API, optionally with OAuth2.
"""

from gateway.connectors.base import Connector
from gateway.connectors.catalog import Catalog

__all__ = ["Catalog", "Connector"]
