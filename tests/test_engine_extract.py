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


FUNCTION = "def f(x):\n    return x + 1\n"


@pytest.mark.parametrize(
    "tail",
    [
        "assert f(1) == 2\nassert f(2) == 3\n",
        "print(f(1))\n",
        "f(1)\n",
        'if __name__ == "__main__":\n    print(f(1))\n    assert f(2) == 3\n',
        "import doctest\ndoctest.testmod()\n",
        "for x, y in [(1, 2), (2, 3)]:\n    assert f(x) == y\n",
        "def test_f():\n    assert f(1) == 2\n\ntest_f()\n",
        "def check(candidate):\n    assert candidate(1) == 2\n\ncheck(f)\n",
        "class TestF(unittest.TestCase):\n    def test_one(self):\n        self.assertEqual(f(1), 2)\n",
    ],
)
def test_the_answers_own_test_code_is_stripped(tail: str) -> None:
    """Top-level test code would raise at import when f is wrong and hide every test's own
    feedback; definitions it needs (an imported module, a test function) may stay."""
    extracted = extract_code(f"```python\n{FUNCTION}\n{tail}```", "f")
    assert extracted.code is not None
    assert extracted.code.startswith(FUNCTION)
    assert "assert f(" not in extracted.code.replace("    assert f(", "")
    for gone in ("print(", "testmod()", "test_f()\n", "check(f)"):
        assert not any(line.startswith(gone) for line in extracted.code.splitlines()), gone


@pytest.mark.parametrize(
    "kept",
    [
        "import sys\nsys.setrecursionlimit(10000)\n",
        "LIMIT = 10\nTABLE = [f(i) for i in range(LIMIT)]\n",
        "class Helper:\n    pass\n",
        "from functools import lru_cache\nmemo = {}\n",
        "if True:\n    VALUE = 3\n",
        "while False:\n    x = 1\n",
    ],
)
def test_top_level_code_a_program_needs_stays(kept: str) -> None:
    answer = f"```python\n{FUNCTION}\n{kept}```"
    assert extract_code(answer, "f").code == f"{FUNCTION}\n{kept}"


def test_an_answer_cut_off_in_its_copied_tests_keeps_the_function() -> None:
    """The token limit hit while the model copied the test class: the function before it is the
    answer (the cut class would not even parse)."""
    cut = "# Test cases\nclass TestF(unittest.TestCase):\n    def test_one(self):\n"
    cut += "        self.assertEqual(f(1),"
    answer = f"```python\n{FUNCTION}\n{cut}"
    assert extract_code(answer, "f").code == FUNCTION


def test_stdin_programs_keep_their_top_level_code() -> None:
    """Without an entry point the program is its top-level code (stdin/stdout problems)."""
    program = "n = int(input())\nprint(n * 2)\n"
    assert extract_code(f"```python\n{program}```").code == program


def test_imports_an_answer_uses_but_never_wrote_are_added() -> None:
    """The given code's own imports first (an answer that rewrote the function without them),
    then the common names small models forget; nothing the answer binds itself is imported over,
    and an answer that needs nothing is left as it was."""
    stub = (
        "Complete this.\n\n```python\nimport matplotlib.pyplot as plt\nfrom itertools import product\n\n"
        "def f(xs):\n    pass\n```"
    )
    answer = (
        "```python\ndef f(xs, random=None):\n    np = None\n    ax = plt.gca()\n"
        "    return Counter(product(xs, xs)), math.pi, List, np, random\n```"
    )
    code = extract_code(answer, "f", stub).code
    assert code == (
        "import matplotlib.pyplot as plt\nfrom itertools import product\nfrom collections import Counter\n"
        "from typing import List\nimport math\ndef f(xs, random=None):\n    np = None\n    ax = plt.gca()\n"
        "    return Counter(product(xs, xs)), math.pi, List, np, random\n"
    )
    assert extract_code(f"```python\n{CODE}```", "f", stub).code == CODE
    # A given program (HumanEval's prompt is code) works the same; prose without code adds only common ones.
    assert extract_code(
        "```python\ndef f(xs: List[int]):\n    return xs\n```",
        "f",
        "from typing import List\n\ndef f(xs):\n    pass\n",
    ).code == ("from typing import List\ndef f(xs: List[int]):\n    return xs\n")
    assert extract_code(
        "```python\ndef f(x):\n    return re.sub('a', '', x)\n```", "f", "Remove every a."
    ).code == ("import re\ndef f(x):\n    return re.sub('a', '', x)\n")
