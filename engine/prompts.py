"""The chat format of the µCode conversation, in one place and versioned.

Turn 1 states the problem and its public tests; each later turn shows the chosen candidate's code
and its execution feedback and asks for a fixed version. Training records ``PROMPT_VERSION`` with
every rollout and a checkpoint's manifest names it, so a model is served with the format it was
trained on. Change the text only together with the version.
"""

from __future__ import annotations

from mucode.problems import Problem

from .trace import ChatMessage

PROMPT_VERSION = "mucode-chat-1"

SYSTEM = (
    "You are an expert Python programmer. You write correct, complete, efficient Python 3 code. "
    "Answer with exactly one ```python code block containing the full solution."
)


def _tests_section(problem: Problem) -> str:
    parts = []
    if problem.public_tests:
        parts.append(
            "Your code must pass these tests:\n```python\n" + "\n".join(problem.public_tests) + "\n```"
        )
    for k, io in enumerate(problem.public_io_tests, start=1):
        parts.append(f"Example {k} input:\n```\n{io.input}\n```\nExpected output:\n```\n{io.output}\n```")
    return "\n\n".join(parts)


def first_turn(problem: Problem) -> list[ChatMessage]:
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
        ChatMessage(role="system", content=SYSTEM),
        ChatMessage(role="user", content="\n\n".join(sections)),
    ]


def answer(code: str | None, raw_text: str) -> ChatMessage:
    """The assistant turn as the conversation keeps it: the extracted code in a canonical block
    (the same form training uses for targets), or the raw answer when it held no code."""
    return ChatMessage(role="assistant", content=f"```python\n{code.strip()}\n```" if code else raw_text)


def feedback_turn(feedback: str) -> ChatMessage:
    return ChatMessage(
        role="user",
        content=(
            "Your code did not pass the tests. Execution feedback:\n\n"
            f"{feedback}\n\n"
            "Fix the code. Answer with one ```python code block containing the complete corrected solution."
        ),
    )


def next_turn(
    messages: list[ChatMessage], code: str | None, raw_text: str, feedback: str
) -> list[ChatMessage]:
    return [*messages, answer(code, raw_text), feedback_turn(feedback)]
