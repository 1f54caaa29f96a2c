"""A generator that answers from a script instead of a model.

For tests, the load benchmark, training tests and demos: answers are instant and exactly
reproducible, and the whole engine (extraction, sandbox, selection, feedback) runs for real
around them. A script is a list of turns, each a list of answers: turn k of a solve answers
from script[k], round-robin. A script can also be an object mapping a function name to such a
list; a conversation gets the entry whose ``def name(`` its first user message shows (a policy
over a problem set). ``{"seeded": true, "script": ...}`` draws each answer at random with the
request's seed instead of round-robin, like sampling: a rollout policy mixing right and wrong.
With ``prefill=True`` it answers as a model continuing a prefilled answer does: an answer that
starts with the prefill comes back without it, cut at the first stop string. ``tests`` answers the
request for test calls (selection ``agree``, recognised by its system message); without it that
request gets a program, which holds no usable calls.
"""

from __future__ import annotations

import json
import random
import re
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..agreement import SYSTEM as TESTS_SYSTEM
from ..fim import KNOWN
from ..trace import ChatMessage
from .base import Completion, Generator, GeneratorError, SamplingParams, TokenProgress, cut_at_stop

Script = list[list[str]]
DEF = re.compile(r"def\s+(\w+)\s*\(")


class ScriptedGenerator(Generator):
    backend = "scripted"
    fim = KNOWN[0]  # so /v1/completions with `suffix` can be tested without a model

    def __init__(
        self,
        turns: Script | dict[str, Script],
        model: str = "scripted",
        *,
        seeded: bool = False,
        prefill: bool = False,
        tests: str | None = None,
    ) -> None:
        scripts = turns if isinstance(turns, dict) else {"": turns}
        if not scripts or not all(script and all(script) for script in scripts.values()):
            raise ValueError("a script needs at least one answer per turn")
        self.scripts = scripts
        self.seeded = seeded
        self.tests = tests
        self.supports_prefill = prefill
        self.model = model
        # The latest conversations seen, for tests; bounded so a long-running server does not grow.
        self.calls: deque[list[ChatMessage]] = deque(maxlen=64)
        self.prompts: deque[str] = deque(maxlen=64)

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedGenerator:
        """A JSON file: a list of turns, an object of them by function name, or either wrapped
        as ``{"seeded": true, "script": ..., "tests": "assert f(1) == 2\\n..."}``."""
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        seeded, tests = False, None
        if isinstance(data, dict) and "script" in data:
            seeded, tests, data = bool(data.get("seeded")), data.get("tests"), data["script"]
        if isinstance(data, dict):
            script: Script | dict[str, Script] = {str(k): _turns(v) for k, v in data.items()}
        else:
            script = _turns(data)
        return cls(script, model=Path(path).name, seeded=seeded, tests=None if tests is None else str(tests))

    def _script(self, messages: list[ChatMessage]) -> Script:
        if "" in self.scripts:
            return self.scripts[""]
        first = next((m.content for m in messages if m.role == "user"), "")
        for name in DEF.findall(first):
            if name in self.scripts:
                return self.scripts[name]
        raise GeneratorError(f"the script has no answers for this problem (it knows {sorted(self.scripts)})")

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        self.calls.append(list(messages))
        if self.tests is not None and messages and messages[0].content == TESTS_SYSTEM:
            return self._answer([self.tests], sum(len(m.content.split()) for m in messages), params)
        turns = self._script(messages)
        turn = sum(m.role == "assistant" for m in messages)
        answers = turns[min(turn, len(turns) - 1)]
        return self._answer(answers, sum(len(m.content.split()) for m in messages), params)

    async def sample_watched(
        self, messages: list[ChatMessage], params: SamplingParams, on_tokens: TokenProgress
    ) -> list[Completion]:
        """Reports half of each answer's tokens, then all of them, as a decoding backend would."""
        completions = await self.sample(messages, params)
        written = [c.completion_tokens for c in completions]
        on_tokens([w // 2 for w in written])
        on_tokens(written)
        return completions

    async def stream(
        self, messages: list[ChatMessage], params: SamplingParams
    ) -> AsyncIterator[str | Completion]:
        """The scripted answer word by word, as a streaming backend writes it."""
        (completion,) = await self.sample(messages, params.model_copy(update={"n": 1}))
        for piece in _words(completion.text):
            yield piece
        yield completion

    async def stream_complete(self, prompt: str, params: SamplingParams) -> AsyncIterator[str | Completion]:
        (completion,) = await self.complete(prompt, params.model_copy(update={"n": 1}))
        for piece in _words(completion.text):
            yield piece
        yield completion

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        """Raw completions answer from the script's first turn."""
        self.prompts.append(prompt)
        return self._answer(next(iter(self.scripts.values()))[0], len(prompt.split()), params)

    def _answer(self, answers: list[str], prompt_tokens: int, params: SamplingParams) -> list[Completion]:
        if self.seeded:
            rng = random.Random(params.seed)
            texts = [rng.choice(answers) for _ in range(params.n)]
        else:
            texts = [answers[i % len(answers)] for i in range(params.n)]
        return [self._completion(t, prompt_tokens, params) for t in texts]

    def _completion(self, text: str, prompt_tokens: int, params: SamplingParams) -> Completion:
        if self.supports_prefill:
            text = text.removeprefix(params.prefill)
            text, _ = cut_at_stop(text, params.stop)
        # A stand-in likelihood: -1 per character, so a shorter answer is the likelier one.
        tokens, logprob = len(text.split()), -float(len(text))
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=tokens, logprob=logprob)


def _turns(value: Any) -> Script:
    if not isinstance(value, list) or not all(isinstance(turn, list) for turn in value):
        raise ValueError("a script is a list of turns, each a list of answer strings")
    return [[str(answer) for answer in turn] for turn in value]


def _words(text: str) -> list[str]:
    """A text as a streaming backend would send it: word by word, whitespace included."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text) or [text]
