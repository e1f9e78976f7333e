"""``streamlit run dashboard/app.py``: the dashboard's entry (docs/dashboard.md)."""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="IoT platform", page_icon=":material/sensors:", layout="wide")
navigation = st.navigation([
    st.Page(PAGES / "fleet.py", title="Fleet", icon=":material/map:", default=True),
    st.Page(PAGES / "device.py", title="Device", icon=":material/show_chart:"),
    st.Page(PAGES / "forecasting.py", title="Forecasting", icon=":material/query_stats:"),
    st.Page(PAGES / "data_health.py", title="Data health", icon=":material/monitor_heart:"),
    st.Page(PAGES / "analyses.py", title="Analyses", icon=":material/analytics:"),
])
navigation.run()
