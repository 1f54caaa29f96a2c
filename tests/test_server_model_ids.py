"""Model ids: presets (built in and the operator's), options after a colon, the generator under a
familiar name."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mucode.server.model_ids import familiar_id
from mucode.server.settings import ServerSettings

from .helpers import LiveServer, server_settings


@pytest.mark.parametrize(
    ("model", "familiar"),
    [
        ("/root/.cache/mucode/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "qwen2.5-coder-0.5b-instruct"),
        ("/root/.cache/mucode/models/Qwen2.5-Coder-0.5B-Instruct-bf16", "qwen2.5-coder-0.5b-instruct"),
        ("/models/Qwen2.5-Coder-0.5B-Instruct-bf16/", "qwen2.5-coder-0.5b-instruct"),
        ("Qwen/Qwen2.5-Coder-7B-Instruct", "qwen2.5-coder-7b-instruct"),
        ("TheBloke/CodeLlama-7B-GGUF", "codellama-7b"),
        ("deepseek-coder-6.7b-instruct.Q8_0.gguf", "deepseek-coder-6.7b-instruct"),
        ("gpt-4o-mini", "gpt-4o-mini"),
    ],
)
def test_familiar_ids(model: str, familiar: str) -> None:
    assert familiar_id(model) == familiar


def test_operator_presets_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUCODE_PRESETS", '{"mucode-wide": {"n": 4, "turns": 1}, "mucode-fast": {"n": 2}}')
    settings = ServerSettings()
    assert settings.all_presets()["mucode-wide"].model_dump(exclude_unset=True) == {"n": 4, "turns": 1}
    assert settings.all_presets()["mucode-fast"].model_dump(exclude_unset=True) == {"n": 2}  # replaced
    base = server_settings(tmp_path)
    server = LiveServer(base.model_copy(update={"presets": settings.presets}))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            ids = [m["id"] for m in http.get("/v1/models").json()["data"]]
            assert ids[:4] == ["mucode", "mucode-fast", "mucode-thorough", "mucode-wide"]
            body = {
                "model": "mucode-wide",
                "messages": [{"role": "user", "content": "def double(x):\n    pass\n"}],
                "tests": ["assert double(2) == 4"],
            }
            answer = http.post("/v1/chat/completions", json=body).json()
            assert (answer["mucode"]["options"]["n"], answer["mucode"]["options"]["turns"]) == (4, 1)
            assert http.get("/v1/models/nope:n=2").status_code == 404
    finally:
        server.stop()
