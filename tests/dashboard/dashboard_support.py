"""Helpers of the dashboard tests (a uniquely named module: `conftest` is ambiguous across test folders)."""

from __future__ import annotations

import os
from contextlib import contextmanager

from iot_core.settings import get_settings

PAGES = ("fleet", "device", "forecasting", "data_health", "analyses")


@contextmanager
def pointing_at(database: str):
    """The settings (and so the dashboard) read this warehouse database while inside."""
    old = os.environ.get("WAREHOUSE_DB")
    os.environ["WAREHOUSE_DB"] = database
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        if old is None:
            os.environ.pop("WAREHOUSE_DB", None)
        else:
            os.environ["WAREHOUSE_DB"] = old
        get_settings.cache_clear()
