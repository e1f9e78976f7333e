"""The dashboard as a user sees it: `streamlit run` (the command `make up` supervises) on a free
port against the filled test warehouse, every page opened in Debian's headless Chromium through
chromedriver; no page may show Streamlit's exception box. Screenshots go to docs/img/.

Skipped, with the reason, where Chromium, chromedriver or selenium is missing (`.ci/run` installs
the Debian packages `chromium` and `chromium-driver`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from dashboard_support import PAGES

from iot_cli.localstack.process import free_port
from iot_cli.localstack.stack import STOP_ORDER, Stack
from iot_core.settings import PROJECT_ROOT

SCREENSHOTS = PROJECT_ROOT / "docs" / "img"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
URL_PATHS = {"fleet": "", "device": "device", "forecasting": "forecasting", "data_health": "data_health",
             "analyses": "analyses"}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1440,1800", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def dashboard_server(filled_warehouse, test_state_dir):
    """The dashboard as supervisord starts it in `make up` (``python -m iot_cli.localstack.launch
    dashboard``), healthy by the stack's own check (``/_stcore/health``)."""
    settings, _ = filled_warehouse
    port = free_port()
    settings = settings.model_copy(update={"dashboard_port": port})
    env = {**os.environ, "WAREHOUSE_DB": settings.warehouse_db, "DASHBOARD_PORT": str(port),
           "DASHBOARD_REFRESH_SECONDS": "600", "HOME": str(test_state_dir)}
    log_path = test_state_dir / "dashboard.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "iot_cli.localstack.launch", "dashboard"], env=env,
                                cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stack = Stack(settings, echo=lambda _: None)
    assert "dashboard" in {svc.name for svc in stack.services()}
    deadline = time.monotonic() + 90
    while not stack.healthy("dashboard"):
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the dashboard did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.5)
    yield f"http://127.0.0.1:{port}/"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    assert not stack.healthy("dashboard")


def wait_until_rendered(driver, timeout: float = 90) -> None:
    """The page title is drawn, the script is no longer running, and the charts have their canvas."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        titled = driver.find_elements(By.CSS_SELECTOR, "h1")
        charts = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]')
        drawn = all(c.find_elements(By.CSS_SELECTOR, "canvas, svg") for c in charts)
        if titled and not running and drawn:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 2:
                return
        else:
            quiet_since = None
        time.sleep(0.5)
    raise AssertionError("the page did not finish rendering in time")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_in_chromium_without_an_exception(browser, dashboard_server, page):
    from selenium.webdriver.common.by import By

    browser.get(dashboard_server + URL_PATHS[page])
    wait_until_rendered(browser)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"dashboard-{page.replace('_', '-')}.png"))
    exceptions = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not exceptions, [e.text for e in exceptions]
    errors = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')
    assert not errors, [e.text for e in errors]
    assert browser.find_element(By.CSS_SELECTOR, "h1").text


def test_the_stack_runs_the_dashboard_on_its_port_and_stops_it_with_the_clients(settings_env):
    stack = Stack(settings_env.model_copy(update={"dashboard_port": 43017}), echo=lambda _: None)
    dashboard = next(svc for svc in stack.services() if svc.name == "dashboard")
    assert dashboard.ports == (("DASHBOARD_PORT", 43017),)
    assert dashboard.url == "http://127.0.0.1:43017/"
    assert dashboard.program.command[-2:] == ["iot_cli.localstack.launch", "dashboard"]
    assert "dashboard" in STOP_ORDER[0]
    assert "dashboard" not in {svc.name for svc in stack.services(skip=frozenset({"dashboard"}))}
