"""OpenAI's Responses API (`POST /v1/responses`) through the official SDK, against a live server
with the scripted generator: what Codex CLI and Continue send."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from .helpers import LiveServer

PROBLEM = 'def double(x):\n    """Return twice x."""\n'
TESTS = {"tests": ["assert double(2) == 4", "assert double(0) == 0"]}
SHELL_TOOL: Any = {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {}}}


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def test_a_tested_answer_with_usage_and_the_trace(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="mucode", input=PROBLEM, instructions="Answer with code.", tools=[SHELL_TOOL], extra_body=TESTS
    )
    assert response.status == "completed" and response.object == "response"
    assert "def double" in response.output_text
    assert "Passed 2/2 public tests" in response.output_text
    assert response.usage is not None and response.usage.output_tokens > 0
    trace = (response.model_extra or {})["mucode"]
    assert trace["turns"][0]["messages"][0]["content"].endswith("Answer with code.")
    assert client.responses.retrieve(response.id).output_text == response.output_text


def test_message_items_and_a_follow_up_through_previous_response_id(client: openai.OpenAI) -> None:
    items: Any = [
        {"role": "developer", "content": "The project targets Python 3.11."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": PROBLEM}]},
        {"type": "function_call_output", "call_id": "c1", "output": "ignored: no tools here"},
    ]
    first = client.responses.create(model="mucode", input=items, extra_body=TESTS)
    follow = client.responses.create(
        model="mucode-fast",
        input="Now make it handle negatives.",
        previous_response_id=first.id,
        extra_body=TESTS,
    )
    messages = (follow.model_extra or {})["mucode"]["turns"][0]["messages"]
    assert messages[0]["content"].endswith("The project targets Python 3.11.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "def double" in messages[1]["content"] and "def double" in messages[2]["content"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="mucode", input="hi", previous_response_id="resp_nope")
    assert missing.value.code == "response_not_found"


def test_a_streamed_response_yields_progress_text_deltas_and_completed_usage(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="mucode", input=PROBLEM, stream=True, extra_body=TESTS))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.reasoning_summary_text.delta" in kinds  # the search's progress
    assert "response.output_text.delta" in kinds
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    completed = events[-1].response  # type: ignore[union-attr]
    assert completed.output_text == text and "def double" in text
    assert completed.usage is not None and completed.usage.total_tokens > 0


def test_plain_generator_and_errors(client: openai.OpenAI) -> None:
    generator = [m.id for m in client.models.list()][-1]
    plain = client.responses.create(model=generator, input="hi")
    assert plain.output_text and (plain.model_extra or {}).get("mucode") is None
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-nope", input="hi")
    with pytest.raises(openai.UnprocessableEntityError):
        client.responses.create(model="mucode", input=[{"type": "reasoning", "summary": []}])  # type: ignore[list-item]
