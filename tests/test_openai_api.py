"""The OpenAI-compatible API, driven by the official `openai` package against a live server.

The server runs the scripted generator: turn 1 answers `return x + 2` (fails double(0) == 0),
turn 2 answers `return 2 * x` (passes), so the fix-and-rerank path is observable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from .helpers import LiveServer

PROBLEM = 'Write the function below.\n\ndef double(x):\n    """Return twice x."""\n'
TESTS = ["assert double(2) == 4", "assert double(0) == 0"]


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def test_models_list(client: openai.OpenAI) -> None:
    models = client.models.list().data
    # The presets, then the generator (the scripted one is named after its script file).
    assert [m.id for m in models] == ["mucode", "mucode-fast", "mucode-thorough", "script.json"]
    assert (models[1].model_extra or {})["options"] == {"n": 1, "turns": 1, "temperature": 0.0}
    assert all("/" not in str(m.model_dump()) for m in models)  # no host paths


def test_a_preset_or_options_in_the_model_id_shape_the_search(client: openai.OpenAI) -> None:
    """IDE settings screens have a model field and no extra_body: the id carries the search."""
    ask = {"messages": [{"role": "user", "content": "def add(a, b):\n    pass\n"}]}
    tests = {"tests": ["assert add(2, 3) == 5"]}
    fast = client.chat.completions.create(model="mucode-fast", extra_body=tests, **ask)  # type: ignore[call-overload]
    trace = (fast.model_extra or {})["mucode"]
    assert (trace["options"]["n"], trace["options"]["turns"], fast.model) == (1, 1, "mucode-fast")
    tuned = client.chat.completions.create(model="mucode:n=3,turns=2", extra_body=tests, **ask)  # type: ignore[call-overload]
    options = (tuned.model_extra or {})["mucode"]["options"]
    assert (options["n"], options["turns"]) == (3, 2)
    assert client.models.retrieve("mucode-thorough:turns=5").model_extra == {
        "root": None,
        "options": {"n": 8, "turns": 5},
    }
    with pytest.raises(openai.UnprocessableEntityError) as bad:
        client.chat.completions.create(model="mucode:n=zero", **ask)  # type: ignore[call-overload]
    assert "n" in bad.value.message and bad.value.body["param"] == "model"  # type: ignore[index]


def test_fix_and_rerank_answers_the_passing_candidate(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="mucode", messages=[{"role": "user", "content": PROBLEM}], extra_body={"tests": TESTS, "n": 2}
    )
    content = response.choices[0].message.content or ""
    assert "```python\ndef double(x):\n    return 2 * x\n```" in content
    assert content.rstrip().endswith("Passed 2/2 public tests after 2 turns.")
    trace: dict[str, Any] = response.model_extra["mucode"]  # type: ignore[index]
    assert trace["stop_reason"] == "passed"
    assert len(trace["turns"]) == 2
    usage = response.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens == trace["usage"]["completion_tokens"] > 0


def test_without_tests_the_answer_says_how_it_was_chosen_and_never_passed(
    agreeing_server: LiveServer,
) -> None:
    """No tests: the generator writes calls, the candidates run them, and the verdict names the
    agreement. Two agreeing `return x + 2` outvote one `return 2 * x` by the documented rule
    (2 x (1 + 1) against 1 x (1 + 3)): an unchecked answer, never reported as passed."""
    with openai.OpenAI(base_url=agreeing_server.url + "/v1", api_key="unused", max_retries=0) as client:
        messages = [{"role": "user", "content": PROBLEM}]
        response = client.chat.completions.create(
            model="mucode",
            messages=messages,  # type: ignore[arg-type]
            extra_body={"n": 3},
        )
        content = response.choices[0].message.content or ""
        assert "return x + 2" in content
        assert content.rstrip().endswith(
            "No tests given: chosen by agreement of 2 of 3 candidates on 3 generated inputs, 1 of 3 "
            "written expectations met (1 turn); no test of yours was run."
        )
        assert "Passed" not in content
        trace: dict[str, Any] = response.model_extra["mucode"]  # type: ignore[index]
        assert trace["stop_reason"] == "no_tests"
        assert trace["public_all_passed"] is False
        agreed = trace["turns"][0]["agreement"]
        assert [t["call"] for t in agreed["tests"]] == ["double(2)", "double(5)", "double(-1)"]
        assert [(g["members"], g["outputs"], g["matched"]) for g in agreed["groups"]] == [
            ([0, 1], ["= 4", "= 7", "= 1"], 1),  # the greedy candidate, then two samples
            ([2], ["= 4", "= 10", "= -2"], 3),
        ]
        # Asked for explicitly, the old rule: nothing was run that could check the answer.
        response = client.chat.completions.create(
            model="mucode",
            messages=messages,  # type: ignore[arg-type]
            extra_body={"n": 3, "selection": "pt+lv"},
        )
        assert "No tests were given, so none were run" in (response.choices[0].message.content or "")


def test_tests_are_taken_from_the_message(client: openai.OpenAI) -> None:
    message = PROBLEM + "\nTests:\n```python\n" + "\n".join(TESTS) + "\n```\n"
    response = client.chat.completions.create(model="mucode", messages=[{"role": "user", "content": message}])
    trace = response.model_extra["mucode"]  # type: ignore[index]
    assert trace["public_total"] == 2
    assert trace["public_all_passed"] is True
    assert "assert double" not in trace["turns"][0]["messages"][1]["content"].split("Your code must pass")[0]


def test_streaming_reasoning_then_content_then_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="mucode",
        messages=[{"role": "user", "content": PROBLEM}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"tests": TESTS, "n": 2},
    )
    kinds, reasoning, content, usage = [], "", "", None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
            kinds.append("usage")
            continue
        delta = chunk.choices[0].delta
        extra = delta.model_extra or {}
        if extra.get("reasoning_content"):
            reasoning += extra["reasoning_content"]
            kinds.append("reasoning")
        if delta.content:
            content += delta.content
            kinds.append("content")
    assert kinds.index("content") > kinds.index("reasoning")
    assert kinds[-1] == "usage"
    assert "Turn 1: 2 candidates written; testing 1 distinct programs..." in reasoning
    # tokens as they are written, before the candidates are tested
    assert reasoning.index("  writing: #1 4, #2 0 tokens") < reasoning.index("Turn 1: 2 candidates written")
    assert "  candidate #1: passes 1/2 public tests" in reasoning  # as it lands, before the turn's summary
    assert reasoning.index("candidate #1: passes 1/2") < reasoning.index("Turn 1: 2 candidates, best")
    assert "Turn 1: 2 candidates, best passes 1/2 public tests" in reasoning
    assert "Turn 2: 2 candidates, best passes 2/2 public tests" in reasoning
    assert "return 2 * x" in content
    assert usage is not None
    assert usage.completion_tokens > 0


def test_plain_chat_with_the_generator_model(client: openai.OpenAI) -> None:
    generator = [m.id for m in client.models.list()][-1]
    response = client.chat.completions.create(
        model=generator, messages=[{"role": "user", "content": "hi"}], n=2
    )
    assert len(response.choices) == 2
    assert (response.model_extra or {}).get("mucode") is None  # plain chat: no search, no trace


def test_streamed_plain_chat_arrives_token_by_token(client: openai.OpenAI) -> None:
    generator = [m.id for m in client.models.list()][-1]
    ask: Any = {"model": generator, "messages": [{"role": "user", "content": "hi"}]}
    whole = client.chat.completions.create(**ask).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **ask))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 3 and "".join(deltas) == whole
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_errors_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="mucode", messages=[])
    with pytest.raises(openai.UnprocessableEntityError) as too_many:
        client.chat.completions.create(
            model="mucode",
            messages=[{"role": "user", "content": PROBLEM}],
            extra_body={"tests": ["assert 1"] * 300},
        )
    assert too_many.value.body["param"] == "tests"  # type: ignore[index]
    with pytest.raises(openai.APIStatusError) as too_large:
        client.chat.completions.create(
            model="mucode", messages=[{"role": "user", "content": "x" * (5 << 20)}]
        )
    assert too_large.value.status_code == 413


def test_completions_fill_in_the_middle(client: openai.OpenAI, live_server: LiveServer) -> None:
    generator = [m.id for m in client.models.list()][-1]
    plain = client.completions.create(model=generator, prompt="def double(x):\n", max_tokens=32)
    assert plain.object == "text_completion"
    assert len(plain.choices) == 1
    assert plain.choices[0].text
    assert plain.usage is not None
    assert plain.usage.completion_tokens > 0
    fim = client.completions.create(
        model="mucode", prompt="def double(x):\n    ", suffix="\n\nprint(double(2))\n", n=2
    )
    assert [c.index for c in fim.choices] == [0, 1]
    seen = live_server.runtime.generator.prompts[-1]  # type: ignore[union-attr]
    assert seen == "<|fim_prefix|>def double(x):\n    <|fim_suffix|>\n\nprint(double(2))\n<|fim_middle|>"
    echoed = client.completions.create(model=generator, prompt="# head\n", echo=True)
    assert echoed.choices[0].text.startswith("# head\n")


def test_completions_stream_and_errors(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model="mucode", prompt="x = ", stream=True, n=2, stream_options={"include_usage": True}
        )
    )
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert len(texts) == 2
    assert all(texts)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    # One prompt, one choice (autocomplete): the text as it is written, then the finish reason.
    live = list(
        client.completions.create(
            model="mucode", prompt="x = ", stream=True, stream_options={"include_usage": True}
        )
    )
    pieces = [c.choices[0].text for c in live if c.choices and c.choices[0].finish_reason is None]
    whole = client.completions.create(model="mucode", prompt="x = ").choices[0].text
    assert len(pieces) > 3 and "".join(pieces) == whole
    assert [c.choices[0].finish_reason for c in live if c.choices][-1] == "stop"
    assert live[-1].usage is not None and live[-1].usage.completion_tokens > 0
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-nope", prompt="x")
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model="mucode", prompt="x", max_tokens=0)


def test_every_stream_is_sse_that_proxies_do_not_buffer(live_server: LiveServer) -> None:
    """Chat, completions and /v1/solve streams share one framing: the event-stream type and the
    headers that stop nginx-style proxies from holding events back."""
    requests: dict[str, dict[str, Any]] = {
        "/v1/chat/completions": {"model": "mucode", "messages": [{"role": "user", "content": PROBLEM}]},
        "/v1/completions": {"model": "mucode", "prompt": "def f(", "max_tokens": 4},
        "/v1/solve": {"prompt": PROBLEM, "tests": TESTS, "options": {"n": 1}},
    }
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for path, body in requests.items():
            with http.stream("POST", path, json={**body, "stream": True}) as response:
                assert response.status_code == 200, path
                assert response.headers["content-type"].startswith("text/event-stream"), path
                assert response.headers["x-accel-buffering"] == "no", path
                assert response.headers["cache-control"] == "no-cache", path
                last = [line for line in response.iter_lines() if line][-1]
            assert last in ("data: [DONE]", "data: {}"), (path, last)


def test_one_model_by_id(client: openai.OpenAI) -> None:
    assert client.models.retrieve("mucode").id == "mucode"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-nope")
    assert missing.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_what_the_models_cannot_do_is_refused_not_ignored(
    client: openai.OpenAI, extra: dict[str, Any], param: str
) -> None:
    """A demanded tool call and JSON mode would silently come back as prose: both models refuse
    them, naming the parameter; `tool_choice: none` and `response_format: text` are fine."""
    for model in ("mucode", "script.json"):
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": PROBLEM}], extra_body={"n": 1, **extra}
            )
        assert refused.value.body["param"] == param  # type: ignore[index]
    fine = client.chat.completions.create(
        model="script.json",
        messages=[{"role": "user", "content": PROBLEM}],
        extra_body={"tool_choice": "none", "response_format": {"type": "text"}},
    )
    assert fine.choices[0].message.content


def test_offered_tools_are_accepted_and_answered_in_text(client: openai.OpenAI) -> None:
    """Agents (Continue, Cline) send their tools with every request; with `tool_choice` left to
    the model (`auto`), a text answer is a valid one: the search runs, no tool is called."""
    tools: Any = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]
    for choice in ({}, {"tool_choice": "auto"}):
        answer = client.chat.completions.create(
            model="mucode",
            messages=[{"role": "user", "content": PROBLEM}],
            tools=tools,
            extra_body={"tests": TESTS, "n": 1, **choice},
        )
        message = answer.choices[0].message
        assert message.tool_calls is None
        assert answer.choices[0].finish_reason == "stop"
        assert "return 2 * x" in (message.content or "")


def test_the_whole_conversation_reaches_the_first_turn(client: openai.OpenAI) -> None:
    """An IDE sends the file in an earlier message and asks in the last one; a follow-up keeps the
    tests of the message that gave them. The first turn's prompt holds all of it, in order."""
    messages: list[Any] = [
        {"role": "system", "content": "The project targets Python 3.11."},
        {"role": "user", "content": "Here is utils.py:\n```python\ndef double(x):\n    return x + x\n```"},
        {"role": "assistant", "content": "I have read utils.py."},
        {
            "role": "user",
            "content": "Fix double.\n```python\nassert double(2) == 4\nassert double(0) == 0\n```",
        },
        {"role": "assistant", "content": "```python\ndef double(x):\n    return 2 * x\n```"},
        {"role": "user", "content": "Now make it handle negatives too."},
    ]
    answer = client.chat.completions.create(model="mucode", messages=messages)
    trace = (answer.model_extra or {})["mucode"]
    first = trace["turns"][0]["messages"]
    assert first[0]["content"].endswith("The project targets Python 3.11.")
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "return x + x" in first[1]["content"] and "return 2 * x" in first[4]["content"]
    assert "Now make it handle negatives too." in first[-1]["content"]
    assert trace["public_total"] == 2  # the tests of the message that gave them
    assert (trace["context_messages"], trace["context_dropped"]) == (5, 0)


def test_an_overlong_conversation_drops_its_oldest_turns_and_says_so(live_server: LiveServer) -> None:
    server = LiveServer(live_server.app.state.settings.model_copy(update={"max_context_chars": 120}))
    try:
        with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as c:
            old = [{"role": "user", "content": f"note {k}: " + "x" * 50} for k in range(4)]
            ask = {"role": "user", "content": "def double(x):\n    pass\n"}
            answer = c.chat.completions.create(model="mucode-fast", messages=[*old, ask])  # type: ignore[list-item]
        trace = (answer.model_extra or {})["mucode"]
        assert (trace["context_messages"], trace["context_dropped"]) == (2, 2)
        shown = [m["content"] for m in trace["turns"][0]["messages"]]
        assert not any("note 0" in text or "note 1" in text for text in shown)
        assert any("note 3" in text for text in shown)
    finally:
        server.stop()
