"""The chat formats of the µCode conversation, in one place and versioned.

A ``PromptFormat`` says what the generator sees on turn 1, what it sees on a repair turn (the
chosen candidate's code and its execution feedback), and how its answer starts and stops.
Training records the version with every rollout and a checkpoint's manifest names it, so a model
is served with the format it was trained on: a version's text never changes; new text is a new
version, and ``FORMATS`` keeps the old ones.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass

from mucode.problems import Problem

from .trace import Candidate, ChatMessage

FENCE_OPEN = "```python\n"
FENCE_CLOSE = "```"


def fresh_start(problem: Problem, first: list[ChatMessage], chosen: Candidate) -> list[ChatMessage]:
    """A refill samples the first turn's prompt again."""
    return first


@dataclass(frozen=True)
class PromptFormat:
    version: str
    first_turn: Callable[[Problem], list[ChatMessage]]
    next_turn: Callable[[Problem, list[ChatMessage], Candidate], list[ChatMessage]]
    # The answer is opened with a code fence and cut at the closing one, as Qwen's own evaluation
    # does: no prose before or after the code, and no tokens spent on an explanation.
    fenced_answer: bool = False
    # What a refill samples (a slot whose repair repeated an earlier program), from the first
    # turn's messages and the candidate the turn before chose.
    refill_turn: Callable[[Problem, list[ChatMessage], Candidate], list[ChatMessage]] = fresh_start

    @property
    def prefill(self) -> str:
        return FENCE_OPEN if self.fenced_answer else ""

    @property
    def stop(self) -> list[str]:
        return [FENCE_CLOSE] if self.fenced_answer else []

    def answer_text(self, continuation: str, finish_reason: str, prefilled: bool) -> str:
        """The whole answer from what the generator wrote after the prefill: reopened, and closed
        unless it was cut off by the token limit (a stop at the closing fence removes it)."""
        if not prefilled:
            return continuation
        closing = "" if finish_reason == "length" else "\n" + FENCE_CLOSE
        return self.prefill + continuation.rstrip("\n") + closing


def _tests_section(problem: Problem) -> str:
    parts = []
    if problem.public_tests:
        parts.append(
            "Your code must pass these tests:\n```python\n" + "\n".join(problem.public_tests) + "\n```"
        )
    for k, io in enumerate(problem.public_io_tests, start=1):
        parts.append(f"Example {k} input:\n```\n{io.input}\n```\nExpected output:\n```\n{io.output}\n```")
    return "\n\n".join(parts)


def _in(text: str, prompt: str) -> bool:
    """``text`` occurs in ``prompt``, whitespace aside (and is not blank)."""
    squeezed = re.sub(r"\s+", "", text)
    return bool(squeezed) and squeezed in re.sub(r"\s+", "", prompt)


def _shown(test: str, prompt: str) -> bool:
    """Whether the prompt already shows this test's call (a docstring example such as
    ``>>> f(1)`` for ``assert f(1) == 2``)."""
    try:
        (statement,) = ast.parse(test).body
    except (SyntaxError, ValueError):
        return False
    if not isinstance(statement, ast.Assert):
        return False
    checked = statement.test
    call = checked.left if isinstance(checked, ast.Compare) else checked
    # The call as the test wrote it: unparsing would change its quotes.
    return isinstance(call, ast.Call) and _in(ast.get_source_segment(test, call) or "", prompt)


def unshown_tests(problem: Problem) -> Problem:
    """The problem with only the public tests its prompt does not already show: listing a
    docstring's own examples again as asserts cost the default model 7 of 75 HumanEval problems
    under greedy decoding, and 20 of its 75 answers copied them under the function (1 without;
    docs/benchmarks.md)."""
    prompt = problem.prompt
    return problem.model_copy(
        update={
            "public_tests": [t for t in problem.public_tests if not _shown(t, prompt)],
            "public_io_tests": [
                io
                for io in problem.public_io_tests
                if not all(_in(text, prompt) for text in (io.input, io.output))
            ],
        }
    )


def answer(code: str | None, raw_text: str) -> ChatMessage:
    """The assistant turn as the conversation keeps it: the extracted code in a canonical block
    (the same form training uses for targets), or the raw answer when it held no code."""
    return ChatMessage(role="assistant", content=f"```python\n{code.strip()}\n```" if code else raw_text)


# ---------------------------------------------------------------------------- mucode-chat-1
SYSTEM_1 = (
    "You are an expert Python programmer. You write correct, complete, efficient Python 3 code. "
    "Answer with exactly one ```python code block containing the full solution."
)


def _first_turn_1(problem: Problem) -> list[ChatMessage]:
    if problem.public_io_tests and not problem.entry_point:
        what = "a complete program that reads standard input and writes standard output"
    elif problem.entry_point:
        what = f"the complete function `{problem.entry_point}` with any imports and helpers it needs"
    else:
        what = "the complete solution"
    sections = ["Solve the following problem in Python.", problem.prompt.strip("\n")]
    tests = _tests_section(problem)
    if tests:
        sections.append(tests)
    sections.append(f"Answer with one ```python code block containing {what}. Do not include the tests.")
    return [
        ChatMessage(role="system", content=SYSTEM_1),
        ChatMessage(role="user", content="\n\n".join(sections)),
    ]


def replay_turn(problem: Problem, messages: list[ChatMessage], chosen: Candidate) -> list[ChatMessage]:
    """The conversation goes on: the chosen answer as the model's own turn, then its feedback."""
    feedback = chosen.execution.feedback if chosen.execution else ""
    return [
        *messages,
        answer(chosen.code, chosen.text),
        ChatMessage(
            role="user",
            content=(
                "Your code did not pass the tests. Execution feedback:\n\n"
                f"{feedback}\n\n"
                "Fix the code. Answer with one ```python code block containing the complete "
                "corrected solution."
            ),
        ),
    ]


CHAT_1 = PromptFormat("mucode-chat-1", _first_turn_1, replay_turn)


# ---------------------------------------------------------------------------- mucode-chat-2
# Qwen2.5-Coder's own evaluation prompt (qwencoder-eval/instruct), which its published HumanEval
# score was measured with.
SYSTEM_2 = "You are an intelligent programming assistant to produce Python algorithmic solutions"


def _is_code(text: str) -> bool:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in tree.body)


def _task_2(problem: Problem, listed: Callable[[Problem], Problem]) -> str:
    prompt = problem.prompt.strip("\n")
    if problem.entry_point and _is_code(prompt):
        task = f"Can you complete the following Python function?\n```python\n{prompt}\n```"
    elif problem.public_io_tests and not problem.entry_point:
        task = (
            "Can you write a Python program for the following problem? It reads standard input and "
            f"writes standard output.\n\n{prompt}"
        )
    elif problem.entry_point:
        task = (
            f"Can you write the Python function `{problem.entry_point}` for the following problem?"
            f"\n\n{prompt}"
        )
    else:
        task = f"Can you solve the following problem in Python?\n\n{prompt}"
    tests = _tests_section(listed(problem))
    return f"{task}\n\n{tests}" if tests else task


def first_turn_2(problem: Problem, listed: Callable[[Problem], Problem] = unshown_tests) -> list[ChatMessage]:
    """``listed`` chooses the public tests the message lists (measured alternatives: all of them,
    or none, as Qwen's evaluation)."""
    return [
        ChatMessage(role="system", content=SYSTEM_2),
        ChatMessage(role="user", content=_task_2(problem, listed)),
    ]


def attempt_turn(problem: Problem, messages: list[ChatMessage], chosen: Candidate) -> list[ChatMessage]:
    """A fresh conversation: the task, then the failed attempt and its feedback as something to
    fix rather than the model's own earlier answer (which a small model tends to repeat)."""
    system, task = first_turn_2(problem)
    feedback = chosen.execution.feedback if chosen.execution else ""
    attempt = f"```python\n{chosen.code.strip()}\n```" if chosen.code else chosen.text
    return [
        system,
        ChatMessage(
            role="user",
            content=(
                f"{task.content}\n\nThis attempt is wrong:\n{attempt}\n\nExecution feedback:\n\n"
                f"{feedback}\n\nFind the mistake the feedback points to and write a corrected "
                "version of the whole solution."
            ),
        ),
    ]


def hinted_start(problem: Problem, first: list[ChatMessage], chosen: Candidate) -> list[ChatMessage]:
    """A fresh start that knows what went wrong: the task, then the failed answer's execution
    feedback without its code (shown the code, the default model copies it back nearly always)."""
    feedback = chosen.execution.feedback if chosen.execution else ""
    *earlier, task = first
    return [
        *earlier,
        ChatMessage(
            role="user",
            content=(
                f"{task.content}\n\nAn earlier answer to this task was wrong. Its execution "
                f"feedback:\n\n{feedback}\n\nWrite a correct solution."
            ),
        ),
    ]


CHAT_2 = PromptFormat("mucode-chat-2", first_turn_2, replay_turn, fenced_answer=True)


# ---------------------------------------------------------------------------- mucode-chat-3
def first_turn_3(problem: Problem) -> list[ChatMessage]:
    """mucode-chat-2 inside the conversation the problem came from: its system notes join the
    system message, its earlier turns (the file an IDE sent, the previous answer a follow-up
    refers to) come before the task. Without a conversation, exactly mucode-chat-2."""
    system, task = first_turn_2(problem)
    notes = [m.content for m in problem.context if m.role == "system"]
    if notes:
        system = ChatMessage(role="system", content="\n\n".join([system.content, *notes]))
    earlier = [ChatMessage(role=m.role, content=m.content) for m in problem.context if m.role != "system"]
    return [system, *earlier, task]


CHAT_3 = PromptFormat("mucode-chat-3", first_turn_3, replay_turn, fenced_answer=True)

FORMATS = {f.version: f for f in (CHAT_1, CHAT_2, CHAT_3)}
DEFAULT = CHAT_3
PROMPT_VERSION = DEFAULT.version


def prompt_format(version: str) -> PromptFormat:
    try:
        return FORMATS[version]
    except KeyError:
        raise ValueError(f"unknown prompt version {version!r}; known: {', '.join(FORMATS)}") from None
