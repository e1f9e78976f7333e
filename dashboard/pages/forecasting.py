"""Forecasting: realised error of every model and horizon against persistence, day by day, and
what the UCB1 bandit chose, with its regret.

Each section is one chart (horizons as facets, the bandit's choices beside its regret): every
chart element costs the browser a Vega compile and a draw, and five of them made this the one
page over the 2-second goal (docs/dashboard.md)."""

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import accuracy, ui

DAYS = 30
# pixels a section's panels share: the main column of a 1366-pixel laptop screen beside the
# sidebar (compound charts do not stretch to their container; wider ones were cut off)
CHART_WIDTH = 860
AXIS_WIDTH = 70  # a panel's axis title, labels and padding
LEGEND_WIDTH = 110  # the bandit's arms, right of its charts


def accuracy_chart(lines: pd.DataFrame, horizons: list[int]) -> alt.FacetChart:
    return alt.Chart(lines).mark_line().encode(
        x=alt.X("day:T", title="day"), y=alt.Y("mae:Q", title="MAE (IAQ)"),
        color=alt.Color("model_name:N", legend=alt.Legend(orient="bottom", title=None)),
        strokeDash=alt.condition(alt.datum.model_name == accuracy.PERSISTENCE, alt.value([4, 3]), alt.value([1, 0])),
        tooltip=["day:T", "model_name", "horizon_minutes", alt.Tooltip("mae:Q", format=".2f")],
    ).properties(height=220, width=max(160, CHART_WIDTH // max(len(horizons), 1) - AXIS_WIDTH)).facet(
        column=alt.Column("horizon_minutes:O", title="minutes ahead", sort=sorted(horizons)),
    ).resolve_scale(y="independent")  # each horizon's own range: model against persistence is what to read


def bandit_chart(choices: pd.DataFrame, regret: pd.DataFrame | None) -> alt.HConcatChart | alt.Chart:
    bars = alt.Chart(choices, title="choices per hour (ml.model_selections)").mark_bar().encode(
        x=alt.X("hour:T", title="UTC"), y=alt.Y("choices:Q", stack=True), color="arm:N",
        tooltip=["hour:T", "arm", "choices", alt.Tooltip("mean_reward:Q", format=".3f")],
    ).properties(height=240, width=(CHART_WIDTH - LEGEND_WIDTH) // 2 - AXIS_WIDTH)
    if regret is None:
        return bars
    line = alt.Chart(regret, title="cumulative regret (against the best arm in hindsight)").mark_line().encode(
        x=alt.X("hour:T", title="UTC"), y=alt.Y("cumulative_regret:Q", title="cumulative regret"),
        tooltip=["hour:T", "settled", alt.Tooltip("regret:Q", format=".3f")],
    ).properties(height=240, width=(CHART_WIDTH - LEGEND_WIDTH) // 2 - AXIS_WIDTH)
    return alt.hconcat(bars, line).resolve_scale(color="independent")


def body() -> None:
    st.subheader("Realised MAE against persistence (agg.forecast_accuracy)")

    def draw_accuracy(frame: pd.DataFrame) -> None:
        horizons = sorted(frame["horizon_minutes"].unique())
        default = [h for h in (5, 10, 15) if h in horizons] or horizons[:3]
        chosen = st.multiselect("Horizons (minutes)", horizons, default=default, key="horizons")
        frame = frame[frame["horizon_minutes"].isin(chosen)]
        if frame.empty:
            st.info("choose at least one horizon", icon=":material/info:")
            return
        lines = pd.concat([frame[["day", "horizon_minutes", "model_name", "mae"]], accuracy.persistence_by_day(frame)])
        st.altair_chart(accuracy_chart(lines, chosen))
        st.caption(f"MAE over persistence's MAE on the same points, last {DAYS} days; below 1 beats persistence.")
        st.dataframe(accuracy.ratio_by_model(frame).round(3), width="stretch")

    ui.show(ui.fetch("ACCURACY_BY_DAY", days=DAYS), draw_accuracy)

    st.subheader("Model selection: the bandit's choices and its regret")
    choices, regret = ui.fetch("BANDIT_CHOICES", days=7), ui.fetch("BANDIT_REGRET", days=7)
    drawn = ui.show(choices, lambda f: st.altair_chart(bandit_chart(f, regret.frame if regret.ok else None)))
    if drawn and not regret.ok:  # choices without settled rewards yet: say why the regret is missing
        ui.show(regret, lambda _: None)

    st.subheader("Registered candidates (ml.model_candidates)")
    ui.show(ui.fetch("MODEL_CANDIDATES"), lambda f: st.dataframe(f, hide_index=True, width="stretch"))


ui.page("Forecasting", body, "How the forecasts do once their actual readings arrived, and what the "
        "model selection chose (docs/forecasting.md).")
