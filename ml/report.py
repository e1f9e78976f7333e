"""Read-side helpers for summaries and plots of the forecasts (used by `iot demo`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path


def rows_per_layer(conn, schemas=("raw", "stage", "agg", "curated", "ml")) -> dict[str, dict[str, int]]:
    """Exact row counts of every table in the given schemas."""
    out: dict[str, dict[str, int]] = {}
    with conn.cursor() as cur:
        cur.execute("select table_schema, table_name from information_schema.tables"
                    " where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1, 2", (list(schemas),))
        for schema, table in cur.fetchall():
            cur.execute(f'select count(*) from "{schema}"."{table}"')
            out.setdefault(schema, {})[table] = cur.fetchone()[0]
    return out


def current_candidates(conn) -> list[tuple]:
    """(candidate, version, val_mae, persistence_mae, mae_ratio, mae_by_horizon, params, fold_days) of the
    current arms, best walk-forward validation ratio first."""
    with conn.cursor() as cur:
        cur.execute("select candidate, model_version, val_mae, persistence_mae, mae_ratio, mae_by_horizon, params,"
                    " fold_days from ml.model_candidates where is_current order by mae_ratio nulls last, candidate")
        return cur.fetchall()


def most_moving_window(conn, until, minutes: int, look_back_hours: float = 24) -> tuple[str, object] | None:
    """(device, start) of the ``minutes`` with the largest IAQ spread among the last
    ``look_back_hours`` before ``until``: where a forecast has something to show."""
    import numpy as np
    import pandas as pd

    with conn.cursor() as cur:
        cur.execute("select device_id, time, iaq from stage.iaq_minutely where time >= %s and time < %s"
                    " and not is_interpolated order by device_id, time",
                    (until - timedelta(hours=look_back_hours), until))
        rows = cur.fetchall()
    if not rows:
        return None
    df = pd.DataFrame(rows, columns=["device_id", "time", "iaq"])
    best = None
    for device, part in df.groupby("device_id"):
        series = part.set_index("time")["iaq"].astype(float)
        spread = series.rolling(f"{minutes}min").std().dropna()
        if spread.empty:
            continue
        end = spread.idxmax()
        if best is None or spread.max() > best[0]:
            best = (float(spread.max()), device, end - timedelta(minutes=minutes - 1))
    return None if best is None or not np.isfinite(best[0]) else (best[1], best[2].to_pydatetime())


def latest_predictions(conn, device_id: str) -> list[tuple]:
    """(time, measure_name, value, model_name, model_version, issued_at) of the device's newest issue."""
    with conn.cursor() as cur:
        cur.execute("select time, measure_name, value, model_name, model_version, issued_at from ml.predictions"
                    " where device_id = %s and issued_at = (select max(issued_at) from ml.predictions"
                    " where device_id = %s) order by time", (device_id, device_id))
        return cur.fetchall()


def plot_actual_vs_predicted(conn, device_id: str, since: datetime, until: datetime, path: Path,
                             horizons: tuple[int, ...] = (1, 5, 15)) -> Path:
    """PNG of the actual IAQ of one device against its predictions 1, 5 and 15 minutes ahead over
    [since, until], plus the last 15-minute forecast issued in that span, with the model that made
    each prediction marked along the bottom."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with conn.cursor() as cur:
        cur.execute("select time, iaq from stage.iaq_minutely where device_id = %s and time >= %s and time <= %s"
                    " and not is_interpolated order by time", (device_id, since, until))
        actual = cur.fetchall()
        cur.execute("select measure_name, time, value, model_name from ml.predictions where device_id = %s"
                    " and time >= %s and time <= %s and measure_name = any(%s) order by time",
                    (device_id, since, until, [f"iaq~{h}" for h in horizons]))
        preds = cur.fetchall()
        cur.execute("select time, value, model_name, model_version, issued_at from ml.predictions"
                    " where device_id = %s and issued_at = (select max(issued_at) from ml.predictions"
                    " where device_id = %s and issued_at <= %s - interval '15 minutes') order by time",
                    (device_id, device_id, until))
        last = cur.fetchall()
    fig, ax = plt.subplots(figsize=(11, 4.8))
    if actual:
        ax.plot([t for t, _ in actual], [v for _, v in actual], color="black", lw=1.8, label="actual IAQ")
    colours = {1: "tab:green", 5: "tab:orange", 15: "tab:blue"}
    for h in horizons:
        pts = [(t, v) for m, t, v, _ in preds if m == f"iaq~{h}"]
        if pts:
            ax.plot([t for t, _ in pts], [v for _, v in pts], lw=1.1, alpha=0.85, color=colours.get(h),
                    label=f"predicted {h} min ahead")
    if last:
        issued = last[0][4]
        start_value = next((v for t, v in actual if t == issued), last[0][1])
        ax.plot([issued] + [r[0] for r in last], [start_value] + [r[1] for r in last], color="tab:red", lw=2,
                ls="--", label=f"forecast issued {issued:%H:%M} ({last[0][2]} v{last[0][3]})")
        ax.axvline(issued, color="grey", lw=0.8, ls=":")
    models = sorted({m for *_, m in preds})
    if models and actual:
        lo = min(v for _, v in actual)
        marker = {m: i for i, m in enumerate(models)}
        fifteen = [(t, m) for name, t, _, m in preds if name == f"iaq~{max(horizons)}"]
        for m in models:
            ts = [t for t, mm in fifteen if mm == m]
            ax.scatter(ts, [lo] * len(ts), marker="|", s=60, color=f"C{marker[m] + 4}", label=f"chosen: {m}")
    ax.set_title(f"IAQ of {device_id}: actual against the published forecasts")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("IAQ")
    ax.legend(loc="best", fontsize=8)
    ax.set_xlim(since, until)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
