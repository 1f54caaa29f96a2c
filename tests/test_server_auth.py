"""API keys: every /v1 route needs `Authorization: Bearer <key>` when keys are configured."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from .helpers import LiveServer, server_settings


@pytest.fixture(scope="module")
def authed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = server_settings(tmp_path_factory.mktemp("auth"))
    settings.api_keys = ["sk-one", "sk-two"]
    server = LiveServer(settings)
    yield server
    server.stop()


def test_openai_client_needs_a_valid_key(authed_server: LiveServer) -> None:
    url = authed_server.url + "/v1"
    with openai.OpenAI(base_url=url, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as denied:
            bad.models.list()
        assert denied.value.body["code"] == "invalid_api_key"  # type: ignore[index]
    with openai.OpenAI(base_url=url, api_key="sk-two", max_retries=0) as good:
        assert "mucode" in [m.id for m in good.models.list()]


def test_every_v1_route_is_protected_and_health_is_open(authed_server: LiveServer) -> None:
    with httpx.Client(base_url=authed_server.url, timeout=30) as http:
        for method, path in [
            ("POST", "/v1/execute"),
            ("POST", "/v1/solve"),
            ("POST", "/v1/chat/completions"),
            ("POST", "/v1/completions"),
            ("POST", "/v1/score"),
            ("POST", "/v1/jobs"),
            ("GET", "/v1/jobs/job-x"),
            ("DELETE", "/v1/jobs/job-x"),
            ("GET", "/v1/models"),
        ]:
            response = http.request(method, path, json={})
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
        assert http.get("/health").status_code == 200
        assert http.get("/metrics").status_code == 200  # open unless MUCODE_METRICS_REQUIRE_KEY
        ok = http.post("/v1/execute", json={"code": "x = 1"}, headers={"Authorization": "Bearer sk-one"})
        assert ok.status_code == 200
        assert ok.json()["passed"] is True


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from mucode.server.settings import ServerSettings

    monkeypatch.setenv("MUCODE_API_KEYS", "sk-a, sk-b")
    assert ServerSettings().api_keys == ["sk-a", "sk-b"]
    monkeypatch.setenv("MUCODE_API_KEYS", '["sk-c"]')
    assert ServerSettings().api_keys == ["sk-c"]


def test_metrics_can_require_a_key(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = server_settings(tmp_path_factory.mktemp("metrics"), server={"metrics_require_key": True})
    settings.api_keys = ["sk-one"]
    server = LiveServer(settings)
    try:
        assert httpx.get(server.url + "/metrics").status_code == 401
        ok = httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer sk-one"})
        assert ok.status_code == 200
        assert "mucode_requests_total" in ok.text
    finally:
        server.stop()
