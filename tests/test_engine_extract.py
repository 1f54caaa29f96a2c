"""Code extraction never runs prose or an empty block."""

from __future__ import annotations

import pytest

from mucode.engine.extract import extract_code

CODE = "def f(x):\n    return x + 1\n"


@pytest.mark.parametrize(
    ("answer", "code", "how"),
    [
        (f"Here you go:\n```python\n{CODE}```\nDone.", CODE, "fenced"),
        (f"```\n{CODE}```", CODE, "fenced"),
        (f"```py\n{CODE}```", CODE, "fenced"),
        (f"Sure!\n```python\n{CODE}", CODE, "truncated"),  # cut off by max_tokens
        (CODE, CODE, "plain"),
        ("```python\n```\nNo idea.", None, "none"),  # empty block
        ("```python\n   \n```", None, "none"),
        ("I cannot solve this problem.", None, "none"),
        ("Hello", None, "none"),  # parses as Python, but is not a program
        ("```bash\npip install foo\n```", None, "none"),
        ("", None, "none"),
    ],
)
def test_extraction(answer: str, code: str | None, how: str) -> None:
    extracted = extract_code(answer, "f")
    assert extracted.code == code
    assert extracted.how == how


def test_prefers_the_block_defining_the_entry_point() -> None:
    answer = (
        "First a helper:\n```python\ndef helper():\n    return 1\n```\n"
        f"The solution:\n```python\n{CODE}```\nUsage:\n```python\nprint(f(1))\n```\n"
    )
    assert extract_code(answer, "f").code == CODE


def test_last_complete_definition_wins() -> None:
    draft = "def f(x):\n    return x\n"
    partial = "```python\ndef f(x):\n    re"
    answer = f"Draft:\n```python\n{draft}```\nBetter:\n```python\n{CODE}```\nPartial:\n{partial}"
    assert extract_code(answer, "f").code == CODE


def test_without_entry_point_takes_the_largest_complete_block() -> None:
    answer = (
        "```python\nx = 1\n```\n```python\nimport sys\nprint(sum(map(int, sys.stdin.read().split())))\n```"
    )
    assert "sys.stdin" in (extract_code(answer, None).code or "")


def test_tildes_and_longer_fences() -> None:
    assert extract_code(f"~~~python\n{CODE}~~~", "f").code == CODE
    assert extract_code(f"````python\n{CODE}````\ntrailing", "f").code == CODE
