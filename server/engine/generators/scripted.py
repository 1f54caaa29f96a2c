"""A generator that answers from a script instead of a model.

For tests, the load benchmark and demos: answers are instant and exactly reproducible, and the
whole engine (extraction, sandbox, selection, feedback) runs for real around them. A script is a
list of turns, each a list of answers; turn k of a solve samples from script[k] round-robin.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

from ..fim import KNOWN
from ..trace import ChatMessage
from .base import Completion, Generator, SamplingParams


class ScriptedGenerator(Generator):
    backend = "scripted"
    fim = KNOWN[0]  # so /v1/completions with `suffix` can be tested without a model

    def __init__(self, turns: list[list[str]], model: str = "scripted") -> None:
        if not turns or not all(turns):
            raise ValueError("a script needs at least one answer per turn")
        self.turns = turns
        self.model = model
        # The latest conversations seen, for tests; bounded so a long-running server does not grow.
        self.calls: deque[list[ChatMessage]] = deque(maxlen=64)
        self.prompts: deque[str] = deque(maxlen=64)

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedGenerator:
        """A JSON file holding a list of turns, each a list of answer strings."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls([[str(answer) for answer in turn] for turn in data], model=Path(path).name)

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        self.calls.append(list(messages))
        turn = sum(m.role == "assistant" for m in messages)
        answers = self.turns[min(turn, len(self.turns) - 1)]
        return self._answer(answers, sum(len(m.content.split()) for m in messages), params)

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        """Raw completions answer from the script's first turn."""
        self.prompts.append(prompt)
        return self._answer(self.turns[0], len(prompt.split()), params)

    @staticmethod
    def _answer(answers: list[str], prompt_tokens: int, params: SamplingParams) -> list[Completion]:
        return [
            Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=len(text.split()))
            for text in (answers[i % len(answers)] for i in range(params.n))
        ]
