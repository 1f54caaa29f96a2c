"""``POST /v1/solve`` over real HTTP, with the scripted generator (fails turn 1, passes turn 2)."""

from __future__ import annotations

import httpx

from .helpers import assert_openai_error

PROMPT = 'def double(x):\n    """Return twice x."""\n'


def test_solve_returns_the_passing_candidate_and_the_trace(http: httpx.Client) -> None:
    body = {
        "prompt": PROMPT,
        "tests": ["assert double(2) == 4", "assert double(0) == 0"],
        "options": {"n": 2, "turns": 3, "seed": 1},
    }
    response = http.post("/v1/solve", json=body)
    assert response.status_code == 200, response.text
    trace = response.json()
    assert trace["public_all_passed"] is True
    assert trace["stop_reason"] == "passed"
    assert trace["final_code"] == "def double(x):\n    return 2 * x\n"
    assert len(trace["turns"]) == 2
    first = trace["turns"][0]
    assert first["candidates"][1]["duplicate_of"] == 0  # the script repeats itself: run once
    assert "double(0) returned 2, expected 0" in first["candidates"][0]["execution"]["feedback"]
    assert trace["turns"][1]["messages"][-1]["role"] == "user"  # the feedback turn the model saw
    assert trace["generator"].startswith("scripted")
    assert trace["verifier"] == "none"
    assert trace["usage"]["total_tokens"] > 0


def test_solve_errors(http: httpx.Client) -> None:
    assert_openai_error(http.post("/v1/solve", json={"tests": []}), 422, "prompt")
    assert_openai_error(
        http.post("/v1/solve", json={"prompt": PROMPT, "options": {"n": 0}}), 422, "options.n"
    )
    assert_openai_error(
        http.post("/v1/solve", json={"prompt": PROMPT, "options": {"selection": "lv"}}),
        422,
        "options.selection",
    )
    assert_openai_error(
        http.post("/v1/solve", json={"prompt": PROMPT, "tests": ["assert True"] * 300}), 422, "tests"
    )
