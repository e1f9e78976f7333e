"""Swagger UI and ReDoc work without internet (issue 16): every asset the pages reference is
served by the API itself, and nothing points elsewhere."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def client():
    from api.app import app

    return TestClient(app)  # no lifespan: the docs need no database


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client, page):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    # no URL to another host anywhere in the page (CDN scripts, fonts, favicon, validator badge)
    assert re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", html) == []
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assets += re.findall(r"""url\s*:\s*["']([^"']+)["']""", html)  # the OpenAPI document (Swagger UI)
    assets += re.findall(r"""spec-url\s*=\s*["']([^"']+)["']""", html)  # ReDoc
    assert any(a.endswith(".js") for a in assets) and any("openapi.json" in a for a in assets), assets
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > 100, asset
    if page == "/docs":
        assert client.get("/docs/oauth2-redirect").status_code == 200


def test_docs_need_no_key(client):
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/sensors").status_code == 401
