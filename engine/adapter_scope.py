"""Which problems a generator's LoRA adapter is applied to.

An adapter trained on one kind of problem can cost the model on others: the DataFrameBench
generator gains on DataFrameBench test and loses on HumanEval (docs/benchmarks.md). Scoped to
``data-libraries``, the server applies it only to problems that name a data library and answers
the rest with the base model's weights, in the same decode loop (llama.cpp)."""

from __future__ import annotations

import re
from typing import Literal, cast, get_args

from .trace import ChatMessage

AdapterScope = Literal["all", "data-libraries"]

# What DataFrameBench's problems import (all 825 of them name one of these; no HumanEval problem
# does), and the words a user asking such a question writes.
_DATA_LIBRARY = re.compile(
    r"\b(pandas|numpy|scipy|sklearn|scikit-learn|matplotlib|seaborn|statsmodels|polars|pyarrow"
    r"|dataframe|ndarray)\b",
    re.IGNORECASE,
)


def parse_scope(text: str) -> AdapterScope:
    if text not in get_args(AdapterScope):
        raise ValueError(f"an adapter scope is {' or '.join(get_args(AdapterScope))}, not {text!r}")
    return cast(AdapterScope, text)


def names_a_data_library(text: str) -> bool:
    return _DATA_LIBRARY.search(text) is not None


def in_scope(scope: AdapterScope, problem: str) -> bool:
    """Whether the adapter applies to ``problem`` (its statement, or a raw completion's prompt)."""
    return scope == "all" or names_a_data_library(problem)


def chat_problem(messages: list[ChatMessage]) -> str:
    """What decides a chat's scope: its first user message (the problem). Later turns are left
    out so that a feedback turn is decoded as its first turn was, whatever the program imports."""
    return next((m.content for m in messages if m.role == "user"), "")
