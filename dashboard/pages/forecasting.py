"""Forecasting: realised error of every model and horizon against persistence, day by day, and
what the UCB1 bandit chose, with its regret."""

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import ui

DAYS = 30


def body() -> None:
    st.subheader("Realised MAE against persistence (agg.forecast_accuracy)")
    accuracy = ui.fetch("ACCURACY_BY_DAY", days=DAYS)

    def draw_accuracy(frame: pd.DataFrame) -> None:
        horizons = sorted(frame["horizon_minutes"].unique())
        default = [h for h in (5, 10, 15) if h in horizons] or horizons[:3]
        chosen = st.multiselect("Horizons (minutes)", horizons, default=default, key="horizons")
        frame = frame[frame["horizon_minutes"].isin(chosen)].copy()
        frame["mae_ratio"] = frame["mae"] / frame["persistence_mae"]
        persistence = (frame.groupby(["day", "horizon_minutes"], as_index=False)
                       .apply(lambda g: pd.Series({"mae": (g["persistence_mae"] * g["predictions"]).sum()
                                                   / g["predictions"].sum()}), include_groups=False)
                       .assign(model_name="persistence (same points)"))
        lines = pd.concat([frame[["day", "horizon_minutes", "model_name", "mae"]], persistence])
        for column, horizon in zip(st.columns(max(len(chosen), 1)), sorted(chosen), strict=False):
            with column:
                st.caption(f"{horizon} minutes ahead")
                st.altair_chart(alt.Chart(lines[lines["horizon_minutes"] == horizon]).mark_line(point=True).encode(
                    x=alt.X("day:T", title="day"), y=alt.Y("mae:Q", title="MAE (IAQ)"),
                    color=alt.Color("model_name:N", legend=alt.Legend(orient="bottom", columns=2, title=None)),
                    strokeDash=alt.condition(alt.datum.model_name == "persistence (same points)",
                                             alt.value([4, 3]), alt.value([1, 0])),
                    tooltip=["day:T", "model_name", "horizon_minutes", alt.Tooltip("mae:Q", format=".2f")],
                ).properties(height=220), width="stretch", height=340)
        summary = (frame.groupby(["model_name", "horizon_minutes"])
                   .apply(lambda g: pd.Series({
                       "mae": (g["mae"] * g["predictions"]).sum() / g["predictions"].sum(),
                       "persistence_mae": (g["persistence_mae"] * g["predictions"]).sum() / g["predictions"].sum(),
                       "predictions": g["predictions"].sum()}), include_groups=False).reset_index())
        summary["mae_ratio"] = summary["mae"] / summary["persistence_mae"]
        st.caption(f"Over the last {DAYS} days; a ratio below 1 beats persistence.")
        st.dataframe(summary.pivot(index="model_name", columns="horizon_minutes", values="mae_ratio"),
                     width="stretch")

    ui.show(accuracy, draw_accuracy)

    left, right = st.columns(2)
    with left:
        st.subheader("Bandit choices per hour (ml.model_selections)")
        choices = ui.fetch("BANDIT_CHOICES", days=7)
        ui.show(choices, lambda f: st.altair_chart(alt.Chart(f).mark_bar().encode(
            x=alt.X("hour:T", title="UTC"), y=alt.Y("choices:Q", stack=True), color="arm:N",
            tooltip=["hour:T", "arm", "choices", alt.Tooltip("mean_reward:Q", format=".3f")]).properties(height=260),
            width="stretch"))
    with right:
        st.subheader("Regret (against the best arm in hindsight)")
        regret = ui.fetch("BANDIT_REGRET", days=7)
        ui.show(regret, lambda f: st.altair_chart(alt.Chart(f).mark_line().encode(
            x=alt.X("hour:T", title="UTC"), y=alt.Y("cumulative_regret:Q", title="cumulative regret"),
            tooltip=["hour:T", "settled", alt.Tooltip("regret:Q", format=".3f")]).properties(height=260),
            width="stretch"))

    st.subheader("Registered candidates (ml.model_candidates)")
    candidates = ui.fetch("MODEL_CANDIDATES")
    ui.show(candidates, lambda f: st.dataframe(f, hide_index=True, width="stretch"))


ui.page("Forecasting", body, "How the forecasts do once their actual readings arrived, and what the "
        "model selection chose (docs/forecasting.md).")
