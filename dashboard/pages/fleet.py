"""Fleet: every air-quality sensor on its registry location, its last reading, its state and
how much of what it sent was rejected in the last 24 hours."""

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import ui
from iot_core.settings import get_settings

STATE_COLOURS = alt.Scale(domain=["ok", "silent", "alerting"], range=["#2e7d32", "#9e9e9e", "#c62828"])


def device_states(fleet: pd.DataFrame, firing: pd.DataFrame | None, silent_minutes: int) -> pd.Series:
    alerting = set(firing["device_id"]) if firing is not None and not firing.empty else set()
    silent = fleet["minutes_since_seen"].isna() | (fleet["minutes_since_seen"] > silent_minutes)
    return pd.Series(["alerting" if d in alerting else "silent" if s else "ok"
                      for d, s in zip(fleet["device_id"], silent, strict=True)], index=fleet.index)


def location_chart(fleet: pd.DataFrame) -> alt.Chart:
    """Latitude/longitude when the registry has them, else a building/floor x room grid (no map
    tiles: the dashboard works offline)."""
    tooltip = ["device_id", "state", "building", "floor", "room", "location_description",
               alt.Tooltip("last_seen:T", format="%Y-%m-%d %H:%M"), alt.Tooltip("quarantine_rate_24h:Q", format=".1%")]
    if fleet["latitude"].notna().any() and fleet["longitude"].notna().any():
        base = alt.Chart(fleet.dropna(subset=["latitude", "longitude"])).encode(
            x=alt.X("longitude:Q", scale=alt.Scale(zero=False)), y=alt.Y("latitude:Q", scale=alt.Scale(zero=False)))
    else:
        grid = fleet.assign(place=fleet["building"].fillna("?") + " / floor " + fleet["floor"].fillna("?"),
                            room=fleet["room"].fillna("?"))
        base = alt.Chart(grid).encode(x=alt.X("room:N", title="room"), y=alt.Y("place:N", title="building / floor"))
    points = base.mark_circle(size=160, opacity=0.85).encode(color=alt.Color("state:N", scale=STATE_COLOURS),
                                                             tooltip=tooltip)
    return points.properties(height=380)


def body() -> None:
    silent_minutes = get_settings().dashboard_silent_minutes
    fleet = ui.fetch("FLEET")
    firing = ui.fetch("FIRING_ALERTS")
    if not fleet.ok:
        ui.show(fleet, lambda _: None)
        return
    frame = fleet.frame.copy()
    frame["state"] = device_states(frame, firing.frame if firing.ok else None, silent_minutes)
    counts = frame["state"].value_counts()
    cols = st.columns(5)
    cols[0].metric("sensors", len(frame))
    cols[1].metric("ok", int(counts.get("ok", 0)))
    cols[2].metric(f"silent (> {silent_minutes} min)", int(counts.get("silent", 0)))
    cols[3].metric("alerting", int(counts.get("alerting", 0)))
    rate = frame["rejected_24h"].sum() / max(frame["rejected_24h"].sum() + frame["readings_24h"].sum(), 1)
    cols[4].metric("quarantined, 24 h", f"{rate:.2%}")

    left, right = st.columns([3, 2])
    with left:
        st.subheader("Where they are")
        st.altair_chart(location_chart(frame), width="stretch")
    with right:
        st.subheader("Alerts firing now")
        ui.show(firing, lambda f: st.dataframe(
            f[["severity", "rule_id", "device_id", "fired_at", "value", "limit", "message"]],
            hide_index=True, width="stretch"))

    st.subheader("Sensors")
    st.dataframe(
        frame[["device_id", "state", "building", "floor", "room", "location_description", "last_seen",
               "minutes_since_seen", "readings_24h", "rejected_24h", "quarantine_rate_24h"]],
        hide_index=True, width="stretch",
        column_config={
            "last_seen": st.column_config.DatetimeColumn("last seen (UTC)", format="YYYY-MM-DD HH:mm"),
            "minutes_since_seen": st.column_config.NumberColumn("minutes since", format="%.0f"),
            "quarantine_rate_24h": st.column_config.ProgressColumn("quarantined (24 h)", format="percent",
                                                                    min_value=0.0, max_value=1.0),
        })


ui.page("Fleet", body, "Air-quality sensors by registry location (stage.dim_devices): last reading, "
        "state (ok / silent / alerting) and the share of their readings rejected in the last 24 hours.")
