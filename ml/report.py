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
    """(candidate, version, val_mae, persistence_mae, mae_ratio) of the current arms, best first."""
    with conn.cursor() as cur:
        cur.execute("select candidate, model_version, val_mae, persistence_mae, mae_ratio from ml.model_candidates"
                    " where is_current order by val_mae")
        return cur.fetchall()


def latest_predictions(conn, device_id: str) -> list[tuple]:
    """(time, measure_name, value, model_name, model_version, issued_at) of the device's newest issue."""
    with conn.cursor() as cur:
        cur.execute("select time, measure_name, value, model_name, model_version, issued_at from ml.predictions"
                    " where device_id = %s and issued_at = (select max(issued_at) from ml.predictions"
                    " where device_id = %s) order by time", (device_id, device_id))
        return cur.fetchall()


def plot_actual_vs_predicted(conn, device_id: str, since: datetime, path: Path,
                             horizons: tuple[int, ...] = (1, 5, 15)) -> Path:
    """PNG of the actual IAQ of one device against its predictions at a few horizons, plus the
    newest 15-minute forecast."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with conn.cursor() as cur:
        cur.execute("select time, iaq from stage.iaq_minutely where device_id = %s and time >= %s order by time",
                    (device_id, since))
        actual = cur.fetchall()
        cur.execute("select measure_name, time, value from ml.predictions where device_id = %s and time >= %s"
                    " and measure_name = any(%s) order by time",
                    (device_id, since, [f"iaq~{h}" for h in horizons]))
        preds = cur.fetchall()
    latest = latest_predictions(conn, device_id)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    if actual:
        ax.plot([t for t, _ in actual], [v for _, v in actual], color="black", lw=1.6, label="actual IAQ")
    for h in horizons:
        pts = [(t, v) for m, t, v in preds if m == f"iaq~{h}"]
        if pts:
            ax.plot([t for t, _ in pts], [v for _, v in pts], lw=1, alpha=0.8, label=f"predicted {h} min ahead")
    if latest:
        issued = latest[0][5]
        ax.plot([issued] + [r[0] for r in latest], [actual[-1][1] if actual else latest[0][2]] + [r[2] for r in latest],
                color="tab:red", lw=2, ls="--", label=f"newest forecast ({latest[0][3]} v{latest[0][4]})")
        ax.axvline(issued, color="grey", lw=0.8, ls=":")
    ax.set_title(f"IAQ of {device_id}: actual against predicted")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("IAQ")
    ax.legend(loc="best", fontsize=8)
    ax.set_xlim(since, (latest[-1][0] if latest else since) + timedelta(minutes=2))
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
