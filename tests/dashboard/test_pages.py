"""Every page rendered by Streamlit's AppTest against a real warehouse (PostgreSQL, analyst role):
with data, every chart and table is drawn without an exception; empty, every page explains why."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_support import PAGES, pointing_at
from streamlit.testing.v1 import AppTest

from iot_core.settings import PROJECT_ROOT

PAGE_DIR = PROJECT_ROOT / "dashboard" / "pages"


def render(page: str, timeout: float = 60) -> AppTest:
    app = AppTest.from_file(str(Path(PAGE_DIR / f"{page}.py")), default_timeout=timeout)
    app.run()
    return app


def texts(app: AppTest) -> str:
    return "\n".join(e.value for e in (*app.info, *app.warning, *app.markdown, *app.caption)
                     if isinstance(e.value, str))


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_data(filled_warehouse, page):
    settings, _ = filled_warehouse
    with pointing_at(settings.warehouse_db):
        app = render(page)
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert app.title[0].value
    # with data everywhere, no section falls back to an empty state (a missing grant would)
    assert not app.info, [i.value for i in app.info]


def test_fleet_shows_every_sensor_and_its_state(filled_warehouse):
    settings, _ = filled_warehouse
    with pointing_at(settings.warehouse_db):
        app = render("fleet")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["sensors"] == "6"
    assert metrics["alerting"] == "1"  # aq-0001 has the firing IAQ alert
    sensors = app.dataframe[-1].value
    assert list(sensors["device_id"]) == [f"aq-{i:04d}" for i in range(1, 7)]
    assert set(sensors["state"]) <= {"ok", "silent", "alerting"}


def test_device_page_draws_the_seed_000_panel_with_predictions(filled_warehouse):
    settings, _ = filled_warehouse
    with pointing_at(settings.warehouse_db):
        app = render("device")
        assert not app.exception
        # charts are vega-lite specs; the panel's data holds actuals and all three horizons
        assert "no data yet" not in texts(app)
        app.selectbox(key="device").select("aq-0002").run()
    assert not app.exception, [e.value for e in app.exception]


def test_analyses_show_research_ids_never_personal_fields(filled_warehouse):
    settings, _ = filled_warehouse
    with pointing_at(settings.warehouse_db):
        app = render("analyses")
    assert not app.exception
    shown = " ".join(" ".join(map(str, df.value.columns)) for df in app.dataframe)
    for personal in ("email", "dob", "birth", "user_id"):
        assert personal not in shown
    assert app.selectbox(key="research_id").options


@pytest.mark.parametrize("page", PAGES)
def test_empty_warehouse_renders_empty_states(empty_warehouse, page):
    with pointing_at(empty_warehouse.warehouse_db):
        app = render(page)
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert app.info, "an empty page must say why it is empty"
    assert any("switch on" in i.value or "not recorded yet" in i.value for i in app.info), texts(app)


@pytest.mark.parametrize("page", PAGES)
def test_pages_say_when_the_warehouse_is_not_answering(services, page, monkeypatch):
    from iot_cli.localstack.process import free_port
    from iot_core.settings import get_settings

    monkeypatch.setenv("PG_PORT", str(free_port()))  # nothing listens there
    get_settings.cache_clear()
    try:
        app = render(page)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert not app.exception, [e.value for e in app.exception]
    assert any("not answering" in i.value for i in app.info), texts(app)
