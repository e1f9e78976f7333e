"""Device: seed 000's panel (IAQ against the predictions made 5, 10 and 15 minutes earlier), CO2,
the newest 15-minute forecast and the periods the device was alerting, on one timeline."""

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import ui

WINDOWS = {"1 hour": timedelta(hours=1), "3 hours": timedelta(hours=3), "6 hours": timedelta(hours=6),
           "24 hours": timedelta(hours=24), "7 days": timedelta(days=7)}
SERIES = ["IAQ", "IAQ 5 min", "IAQ 10 min", "IAQ 15 min"]


def with_alert_bands(chart: alt.Chart, alerts: pd.DataFrame | None, start, end) -> alt.LayerChart | alt.Chart:
    if alerts is None or alerts.empty:
        return chart
    bands = alerts.assign(band_start=alerts["started_at"].clip(lower=start), band_end=alerts["ended_at"].clip(upper=end))
    shaded = alt.Chart(bands).mark_rect(opacity=0.15, color="#c62828").encode(
        x="band_start:T", x2="band_end:T", tooltip=["rule_id", "severity", "state", "message"])
    return alt.layer(shaded, chart)


def body() -> None:
    devices = ui.fetch("DEVICES")
    if not devices.ok:
        ui.show(devices, lambda _: None)
        return
    ids = list(devices.frame["device_id"])
    left, right = st.columns([2, 1])
    device = left.selectbox("Sensor", ids, key="device")
    window = right.selectbox("Window", list(WINDOWS), index=1, key="window")
    last_seen = ui.fetch("DEVICE_LAST_SEEN", device=device)
    newest = last_seen.frame["last_seen"].iloc[0] if last_seen.ok else None
    # the window ends now, or at the sensor's newest reading when it has been silent longer
    end = ui.utc_now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    if newest is not None and not pd.isna(newest) and newest < end - WINDOWS[window]:
        end = newest.to_pydatetime().replace(second=0, microsecond=0) + timedelta(minutes=1)
        st.warning(f"{device} has been silent since {newest:%Y-%m-%d %H:%M} UTC: showing the window before it.")
    start = end - WINDOWS[window]

    alerts = ui.fetch("DEVICE_ALERTS", device=device, start=start, end=end)
    alert_frame = alerts.frame if alerts.ok else None

    st.subheader("IAQ: actual against the 5, 10 and 15-minute predictions")
    panel = ui.fetch("DEVICE_IAQ_VS_FORECAST", device=device, start=start, end=end)

    def draw_panel(frame: pd.DataFrame) -> None:
        long = frame.melt("time", SERIES, var_name="series", value_name="value").dropna()
        lines = alt.Chart(long).mark_line(interpolate="monotone").encode(
            x=alt.X("time:T", title="UTC"), y=alt.Y("value:Q", title="IAQ", scale=alt.Scale(zero=False)),
            color=alt.Color("series:N", sort=SERIES), strokeDash=alt.condition(
                alt.datum.series == "IAQ", alt.value([1, 0]), alt.value([4, 3])),
            tooltip=["time:T", "series:N", alt.Tooltip("value:Q", format=".1f")])
        st.altair_chart(with_alert_bands(lines, alert_frame, start, end).properties(height=320),
                        width="stretch")

    ui.show(panel, draw_panel)

    left, right = st.columns(2)
    with left:
        st.subheader("CO2 (ppm)")
        co2 = ui.fetch("DEVICE_MEASURE_MINUTELY", device=device, measure="co2", start=start, end=end)
        ui.show(co2, lambda f: st.altair_chart(with_alert_bands(
            alt.Chart(f).mark_line().encode(x=alt.X("time:T", title="UTC"),
                                            y=alt.Y("value:Q", title="CO2 ppm", scale=alt.Scale(zero=False))),
            alert_frame, start, end).properties(height=240), width="stretch"))
    with right:
        st.subheader("Newest 15-minute forecast")
        forecast = ui.fetch("NEWEST_FORECAST", device=device)

        def draw_forecast(f: pd.DataFrame) -> None:
            first = f.iloc[0]
            st.caption(f"issued for {first['issued_at']:%Y-%m-%d %H:%M} UTC by {first['model_name']} "
                       f"(version {first['model_version']})")
            st.altair_chart(alt.Chart(f).mark_line(point=True).encode(
                x=alt.X("time:T", title="UTC"), y=alt.Y("value:Q", title="IAQ", scale=alt.Scale(zero=False)),
                tooltip=["horizon_minutes", alt.Tooltip("value:Q", format=".1f")]).properties(height=210),
                width="stretch")

        ui.show(forecast, draw_forecast)

    st.subheader("Alerts in this window")
    ui.show(alerts, lambda f: st.dataframe(
        f[["rule_id", "severity", "state", "started_at", "fired_at", "ended_at", "still_open", "value", "limit",
           "message"]], hide_index=True, width="stretch"))


ui.page("Device", body, "Seed 000's panel: agg.agg_sensor_readings_minutely against ml.predictions "
        "(the same query as Grafana's), alert periods shaded.")
