"""What every page shares: the warehouse connection, cached query results, the auto-refresh and
the empty states. Pages call :func:`page` with their body and use :func:`show` for each result."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import streamlit as st

from dashboard import queries
from dashboard.queries import Result, Warehouse
from iot_core.settings import get_settings


def _target() -> tuple[str, int, str]:
    s = get_settings()
    return s.pg_host, s.pg_port, s.warehouse_db


@st.cache_resource(show_spinner=False)
def _warehouse(target: tuple[str, int, str]) -> Warehouse:
    return Warehouse(queries.analyst_engine(get_settings()))


def warehouse() -> Warehouse:
    return _warehouse(_target())


def refresh_seconds() -> int:
    return get_settings().dashboard_refresh_seconds


def fetch(query_name: str, **params) -> Result:
    """The result of ``queries.<query_name>`` with these parameters, cached for one refresh period
    (every viewer of a page shares it: one query per period, not per browser)."""
    return _cached(_target(), query_name, tuple(sorted(params.items())))


@st.cache_data(show_spinner=False, ttl=get_settings().dashboard_refresh_seconds)
def _cached(target: tuple[str, int, str], query_name: str, params: tuple) -> Result:
    return _warehouse(target).run(getattr(queries, query_name), **dict(params))


def show(result: Result, render: Callable[[object], None]) -> bool:
    """Render the frame with ``render``, or the reason there is nothing to show. True when rendered."""
    if result.ok:
        render(result.frame)
        return True
    if result.unavailable:
        st.info(result.message, icon=":material/hourglass_empty:")
    else:
        st.info(result.message, icon=":material/info:")
    return False


def page(title: str, body: Callable[[], None], caption: str = "") -> None:
    """Title, then ``body`` as a fragment that reruns every DASHBOARD_REFRESH_SECONDS."""
    st.title(title)
    if caption:
        st.caption(caption)

    @st.fragment(run_every=refresh_seconds())
    def refreshed() -> None:
        body()
        st.caption(f"Updated {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC; refreshes every "
                   f"{refresh_seconds()} s. Read-only, as {get_settings().analyst_user}.")

    refreshed()


def utc_now() -> datetime:
    return datetime.now(UTC)
