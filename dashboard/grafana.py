"""``python -m dashboard.grafana [--check]``: Grafana's seed-000 panel from the dashboard's query.

The Device page and Grafana's "IAQ: actual vs predicted" panel (docker/grafana/dashboards/
iot_overview.json) show the same numbers because the panel's SQL is written from
:data:`dashboard.queries.DEVICE_IAQ_VS_FORECAST`, with Grafana's macros in place of the binds.
``--check`` fails when the file is stale (tests run it)."""

from __future__ import annotations

import json
import sys

from dashboard.queries import DEVICE_IAQ_VS_FORECAST
from iot_core.settings import PROJECT_ROOT

DASHBOARD_FILE = PROJECT_ROOT / "docker" / "grafana" / "dashboards" / "iot_overview.json"
PANEL_TITLE = "IAQ: actual vs predicted ($device)"
# bind -> Grafana: the panel's device variable and the dashboard's time range
MACROS = {":device": "'$device'", ":start": "$__timeFrom()", ":end": "$__timeTo()"}
HEADER = ("-- seed 000's dashboard query: IAQ (per minute, the forecasts' grid) and the predictions made 5, 10 "
          "and 15 minutes earlier\n-- written by `python -m dashboard.grafana` from dashboard/queries.py "
          "(DEVICE_IAQ_VS_FORECAST): the dashboard's Device page runs the same query\n")


def grafana_sql() -> str:
    sql = DEVICE_IAQ_VS_FORECAST.sql.strip()
    for bind, macro in MACROS.items():
        sql = sql.replace(bind, macro)
    return HEADER + sql


def panel_sql(dashboard: dict) -> str:
    panel = next(p for p in dashboard["panels"] if p.get("title") == PANEL_TITLE)
    return panel["targets"][0]["rawSql"]


def write() -> bool:
    """Rewrite the panel's SQL; True when the file changed."""
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    panel = next(p for p in dashboard["panels"] if p.get("title") == PANEL_TITLE)
    if panel["targets"][0]["rawSql"] == grafana_sql():
        return False
    panel["targets"][0]["rawSql"] = grafana_sql()
    DASHBOARD_FILE.write_text(json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n")
    return True


def main(argv: list[str]) -> int:
    if "--check" in argv:
        current = panel_sql(json.loads(DASHBOARD_FILE.read_text())) == grafana_sql()
        print(f"{DASHBOARD_FILE.relative_to(PROJECT_ROOT)}: " + ("up to date" if current else
              "stale: run python -m dashboard.grafana"))
        return 0 if current else 1
    changed = write()
    print(f"{DASHBOARD_FILE.relative_to(PROJECT_ROOT)}: " + ("panel SQL written" if changed else "unchanged"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
