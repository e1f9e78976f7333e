"""Data health: how fresh each layer is, how long forecasts take, what was rejected and why,
data-quality results and failed tasks."""

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import ui

DAYS = 7


def freshness_table(frame: pd.DataFrame) -> pd.DataFrame:
    now = pd.Timestamp(ui.utc_now())
    out = frame.copy()
    out["age"] = [("-" if pd.isna(t) else _age((now - t).total_seconds())) for t in out["newest"]]
    return out


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def body() -> None:
    left, right = st.columns([1, 1])
    with left:
        st.subheader("Freshness per layer")
        freshness = ui.fetch("LAYER_FRESHNESS")
        if freshness.ok and freshness.frame["newest"].isna().all():
            st.info(freshness.empty_message)
        else:
            ui.show(freshness, lambda f: st.dataframe(
                freshness_table(f)[["layer", "age", "newest"]], hide_index=True, width="stretch",
                column_config={"newest": st.column_config.DatetimeColumn("newest (UTC)",
                                                                         format="YYYY-MM-DD HH:mm:ss")}))
        st.caption("MongoDB -> raw -> stage: a reading's capture time is its _ingested_at; the stage "
                   "row shows how recent a capture has reached stage. The analyst role does not read raw.")
    with right:
        st.subheader("Stage -> prediction: forecast cycle latency")
        latency = ui.fetch("FORECAST_LATENCY", days=2)
        ui.show(latency, lambda f: st.altair_chart(alt.Chart(
            f.melt("hour", ["p50_seconds", "p95_seconds"], var_name="percentile", value_name="seconds")
        ).mark_line(point=True).encode(x=alt.X("hour:T", title="UTC"), y="seconds:Q", color="percentile:N",
                                       tooltip=["hour:T", "percentile", alt.Tooltip("seconds:Q", format=".1f")]
                                       ).properties(height=240), width="stretch"))
        st.caption("Seconds from a cycle's newest input minute (issue_minute) to its rows being written "
                   "(ml.forecast_runs.finished_at).")

    left, right = st.columns(2)
    with left:
        st.subheader("Sensor-minutes reaching stage per hour")
        inflow = ui.fetch("STAGE_INFLOW", days=1)
        ui.show(inflow, lambda f: st.altair_chart(alt.Chart(f).mark_bar().encode(
            x=alt.X("hour:T", title="captured (UTC)"), y=alt.Y("sensor_minutes:Q", title="IAQ minutes")
        ).properties(height=220),
            width="stretch"))
    with right:
        st.subheader("Rejected rows by reason (stage.stg_rejects)")
        reasons = ui.fetch("REJECT_REASONS", days=DAYS)
        ui.show(reasons, lambda f: st.altair_chart(alt.Chart(f).mark_bar().encode(
            x=alt.X("hour:T", title="captured (UTC)"), y=alt.Y("rows:Q", stack=True), color="reject_reason:N",
            tooltip=["hour:T", "reject_reason", "rows"]).properties(height=220), width="stretch"))

    st.subheader(f"Data-quality checkpoint, last {DAYS} days (ops.data_quality_results)")
    quality = ui.fetch("DATA_QUALITY", days=DAYS)
    ui.show(quality, lambda f: st.dataframe(f, hide_index=True, width="stretch"))
    st.caption("dbt's own tests run inside the transform DAGs; their results are in the Airflow UI "
               "(a failing test fails its task, which then appears below).")

    st.subheader(f"Failed tasks, last {DAYS} days (ops.task_failures)")
    failures = ui.fetch("TASK_FAILURES", days=DAYS)
    ui.show(failures, lambda f: st.dataframe(f, hide_index=True, width="stretch"))


ui.page("Data health", body, "Freshness, latency, rejects, data-quality checks and failures, as the "
        "warehouse records them.")
