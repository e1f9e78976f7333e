"""Analyses: seed 001's monthly health by age group and a research participant's daily steps
(pseudonymous research id only), seed 004's latest readings and 30-minute averages."""

import altair as alt
import streamlit as st

from dashboard import ui


def body() -> None:
    st.subheader("Monthly health by age group (seed 001)")
    health = ui.fetch("HEALTH_BY_AGE_GROUP")
    ui.show(health, lambda f: (
        st.altair_chart(alt.Chart(f).mark_bar().encode(
            x=alt.X("age_group:N", title="age group"), y=alt.Y("avg_step_count:Q", title="average daily steps"),
            color="age_group:N", column=alt.Column("yearmonth(month_start):O", title="month"),
            tooltip=["age_group", "user_count", alt.Tooltip("avg_resting_bpm:Q", format=".1f"),
                     alt.Tooltip("avg_sleep_minutes_per_day:Q", format=".0f")]).properties(height=200, width=140)),
        st.dataframe(f, hide_index=True, width="stretch")))

    st.subheader("Daily steps of a research participant, past 30 days (seed 001)")
    ids = ui.fetch("RESEARCH_IDS")

    def pick(frame) -> None:
        research_id = st.selectbox("Research id (pseudonymous; consenting users only)",
                                   list(frame["research_id"]), key="research_id")
        steps = ui.fetch("RESEARCH_DAILY_STEPS", research_id=research_id)
        ui.show(steps, lambda f: st.altair_chart(alt.Chart(f.assign(day=f["day"].astype(str))).mark_bar().encode(
            x=alt.X("day:O", title="day"), y=alt.Y("steps:Q"), tooltip=["day", "steps"]).properties(height=220),
            width="stretch"))

    ui.show(ids, pick)

    left, right = st.columns(2)
    with left:
        st.subheader("Latest reading per sensor (seed 004)")
        latest = ui.fetch("LATEST_READINGS")
        ui.show(latest, lambda f: st.dataframe(f, hide_index=True, width="stretch", height=360))
    with right:
        st.subheader("Averages over the last 30 minutes (seed 004)")
        averages = ui.fetch("AVERAGES_LAST_30_MIN")
        ui.show(averages, lambda f: st.dataframe(f, hide_index=True, width="stretch", height=360))


ui.page("Analyses", body, "The seeds' analyses on agg and curated; people appear only by research id.")
