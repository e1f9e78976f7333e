"""Dashboard benchmark: how long each page takes to load with 30 days x 100 sensors in the warehouse.

On a throw-away PostgreSQL (plain, as local mode runs it), the dbt project builds every relation
on empty raw tables, then ``benchmarks.dashboard.warehouse.fill`` writes 30 days of one IAQ and one
CO2 reading a minute for 100 sensors (8.6 M stage readings), the hourly aggregate, rejects, 2 days
of 15-horizon forecasts (4.3 M rows), a week of bandit choices, 30 days of forecast accuracy and of
50 research participants' minutes (2.2 M rows).

Measured per page, for ``--rounds`` rounds with the pages in turn (so every page sees the same load):
  * browser: the page opened in headless Chromium from the dashboard server (started as `make up`
    starts it, caches expired before each visit) until Streamlit reports the script finished and
    every chart is drawn: what a user waits for (skipped without Chromium / chromedriver);
  * AppTest: the page script run by Streamlit's test harness with empty caches, beside a one-line
    page in the same round (the harness's own cost, about 2 s on a loaded 2-core host);
  * the page's queries alone, and each query's time (the slowest names what to fix).
Goal: at most 2 s per page (browser median). JSON in benchmarks/results/dashboard.json, plot beside it.

    .venv/bin/python -m benchmarks.dashboard [--sensors 100] [--days 30] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, start_throwaway_servers, write_result

NAME = "dashboard"
GOAL_SECONDS = 2.0
PAGES = ("fleet", "device", "forecasting", "data_health", "analyses")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def page_queries(page: str) -> list[str]:
    """The query names a page fetches (read from its script: ``ui.fetch("NAME"``)."""
    import re

    text = (PROJECT_ROOT / "dashboard" / "pages" / f"{page}.py").read_text()
    return re.findall(r'ui\.fetch\("([A-Z0-9_]+)"', text)


def query_params(name: str) -> dict:
    from datetime import UTC, datetime, timedelta

    end = datetime.now(UTC).replace(second=0, microsecond=0)
    params = {"device": "aq-0042", "start": end - timedelta(hours=3), "end": end, "measure": "co2",
              "days": 7, "research_id": hashlib.md5(b"research1").hexdigest()}
    from dashboard import queries

    sql = getattr(queries, name).sql
    return {k: v for k, v in params.items() if f":{k}" in sql}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dashboard")
    parser.add_argument("--sensors", type=int, default=100)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--prediction-days", type=float, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10 sensors, 3 days, 5 users, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.sensors, args.days, args.users, args.prediction_days, args.rounds = 10, 3, 5, 0.5, 3

    state = Path(tempfile.mkdtemp(prefix="iot-bench-dashboard-"))
    os.chmod(state, 0o755)
    load_before = load_average()
    settings, cluster, _ = start_throwaway_servers(state)
    try:
        from benchmarks.dashboard.warehouse import build_relations, fill

        print(f"==> dbt builds the relations (PostgreSQL on port {settings.pg_port})", flush=True)
        build_relations(settings)
        print(f"==> filling {args.sensors} sensors x {args.days:g} days", flush=True)
        started = time.monotonic()
        counts = fill(settings, sensors=args.sensors, days=args.days, prediction_days=args.prediction_days,
                      users=args.users, log=lambda line: print(line, flush=True))
        fill_seconds = time.monotonic() - started
        result = measure(settings, args.rounds)
    finally:
        cluster.stop(mode="fast")
        shutil.rmtree(state, ignore_errors=True)
    result.update({
        "data": {"sensors": args.sensors, "days": args.days, "users": args.users,
                 "prediction_days": args.prediction_days, "rows": counts, "fill_seconds": round(fill_seconds, 1)},
        "goal_seconds_per_page": GOAL_SECONDS,
        "load_average_before": load_before, "load_average_after": load_average(),
        "postgres": "plain PostgreSQL 15 (local mode), no TimescaleDB",
    })
    key = "browser_median_s" if all("browser_median_s" in p for p in result["pages"].values()) else "render_median_s"
    result["goal_measured_by"] = key
    result["goal_met"] = all(p[key] <= GOAL_SECONDS for p in result["pages"].values())
    suffix = "" if not args.quick else "_quick"
    write_result(NAME + suffix, result)
    plot(result, RESULTS_DIR / f"{NAME}{suffix}.png")
    return 0


TRIVIAL_PAGE = "import streamlit as st\nst.title('baseline')\n"
URL_PATHS = {"fleet": "", "device": "device", "forecasting": "forecasting", "data_health": "data_health",
             "analyses": "analyses"}


def measure(settings, rounds: int) -> dict:
    """Browser loads, AppTest renders (beside a trivial page) and query timings, pages in turn."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard import queries
    from iot_core.settings import get_settings

    os.environ["WAREHOUSE_DB"] = settings.warehouse_db
    get_settings.cache_clear()
    warehouse = queries.Warehouse(queries.analyst_engine(get_settings()))
    trivial = Path(tempfile.mkdtemp(prefix="iot-bench-trivial-")) / "trivial.py"
    trivial.write_text(TRIVIAL_PAGE)
    renders: dict[str, list[float]] = {p: [] for p in (*PAGES, "baseline")}
    browser: dict[str, list[float]] = {p: [] for p in PAGES}
    query_times: dict[str, list[float]] = {}
    failures: dict[str, list[str]] = {}
    with live_dashboard(settings) as visit:
        for round_no in range(rounds):
            order = PAGES if round_no % 2 == 0 else tuple(reversed(PAGES))
            for page in (*order, "baseline"):
                st.cache_data.clear()
                st.cache_resource.clear()
                script = trivial if page == "baseline" else PROJECT_ROOT / "dashboard" / "pages" / f"{page}.py"
                app = AppTest.from_file(str(script), default_timeout=120)
                started = time.perf_counter()
                app.run()
                renders[page].append(time.perf_counter() - started)
                if page == "baseline":
                    continue
                problems = [e.value for e in app.exception] + [i.value for i in app.info]
                if problems:
                    failures.setdefault(page, problems)
                for name in page_queries(page):
                    warehouse._catalog_at = 0.0  # a cold catalog too, as a fresh process has
                    res = warehouse.run(getattr(queries, name), **query_params(name))
                    query_times.setdefault(name, []).append(res.seconds)
                if visit:
                    browser[page].append(visit(page))
            print(f"round {round_no + 1}/{rounds}: AppTest " + ", ".join(f"{p} {renders[p][-1]:.2f} s" for p in renders)
                  + ("; browser " + ", ".join(f"{p} {browser[p][-1]:.2f} s" for p in PAGES) if visit else "")
                  + f" (load {load_average()})", flush=True)
    pages = {}
    for page in PAGES:
        names = page_queries(page)
        pages[page] = {
            "render_median_s": round(statistics.median(renders[page]), 3),
            "render_max_s": round(max(renders[page]), 3),
            "render_rounds_s": [round(x, 3) for x in renders[page]],
            "render_minus_baseline_rounds_s": [round(a - b, 3) for a, b in zip(renders[page], renders["baseline"],
                                                                                strict=True)],
            "queries_total_median_s": round(sum(statistics.median(query_times[n]) for n in set(names)), 3),
            "queries_median_s": {n: round(statistics.median(query_times[n]), 3) for n in dict.fromkeys(names)},
            "empty_states_or_exceptions": failures.get(page, []),
        }
        if browser[page]:
            pages[page].update({"browser_median_s": round(statistics.median(browser[page]), 3),
                                "browser_max_s": round(max(browser[page]), 3),
                                "browser_rounds_s": [round(x, 3) for x in browser[page]]})
    return {"rounds": rounds, "pages": pages,
            "apptest_baseline_median_s": round(statistics.median(renders["baseline"]), 3)}


class live_dashboard:
    """The dashboard server as `make up` starts it, and a function timing one page in Chromium
    (None without Chromium, chromedriver or selenium)."""

    CACHE_SECONDS = 5  # DASHBOARD_REFRESH_SECONDS of the server: caches expire between visits

    def __init__(self, settings):
        self.settings = settings

    def __enter__(self):
        import subprocess

        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        driver_path = shutil.which("chromedriver")
        try:
            from selenium import webdriver
        except ImportError:
            webdriver = None
        if not (chromium and driver_path and webdriver):
            print("browser timings skipped: chromium, chromedriver or selenium missing", flush=True)
            self.proc = self.driver = None
            return None
        from iot_cli.localstack.process import free_port
        from iot_cli.localstack.stack import Stack

        port = free_port()
        settings = self.settings.model_copy(update={"dashboard_port": port})
        env = {**os.environ, "WAREHOUSE_DB": settings.warehouse_db, "DASHBOARD_PORT": str(port),
               "DASHBOARD_REFRESH_SECONDS": str(self.CACHE_SECONDS)}
        self.log = open(Path(tempfile.gettempdir()) / f"iot-bench-dashboard-{port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "iot_cli.localstack.launch", "dashboard"], env=env,
                                     cwd=PROJECT_ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        stack = Stack(settings, echo=lambda _: None)
        deadline = time.monotonic() + 120
        while not stack.healthy("dashboard"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start (log: {self.log.name})")
            time.sleep(0.5)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1440,1000"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
        base = f"http://127.0.0.1:{port}/"

        def visit(page: str) -> float:
            from selenium.webdriver.common.by import By

            self.driver.get("about:blank")
            time.sleep(self.CACHE_SECONDS + 1)  # the server's query cache has expired
            started = time.perf_counter()
            self.driver.get(base + URL_PATHS[page])
            while time.perf_counter() - started < 120:
                done = self.driver.find_elements(By.CSS_SELECTOR, '[data-test-script-state="notRunning"] h1')
                charts = self.driver.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]')
                if done and all(c.find_elements(By.CSS_SELECTOR, "canvas, svg") for c in charts):
                    return time.perf_counter() - started
                time.sleep(0.05)
            raise RuntimeError(f"{page} did not finish loading in 120 s")

        return visit

    def __exit__(self, *exc):
        import signal

        if self.driver:
            self.driver.quit()
        if self.proc:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
            self.log.close()


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pages = list(result["pages"])
    key = "browser" if result.get("goal_measured_by", "").startswith("browser") else "render"
    medians = [result["pages"][p][f"{key}_median_s"] for p in pages]
    worst = [result["pages"][p][f"{key}_max_s"] for p in pages]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(pages, worst, color="#bbdefb", label="slowest round")
    ax.bar(pages, medians, color="#1565c0", label="median")
    ax.axhline(GOAL_SECONDS, color="#c62828", linestyle="--", label=f"goal {GOAL_SECONDS:g} s")
    data = result["data"]
    what = "headless Chromium, expired caches" if key == "browser" else "AppTest, empty caches"
    ax.set_title(f"Dashboard page load ({what}): {data['sensors']} sensors x {data['days']:g} days\n"
                 f"load average {result['load_average_before']} -> {result['load_average_after']}", fontsize=9)
    ax.set_ylabel("seconds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
