"""OpenAI Responses API (``POST /v1/responses``) request and response models.

The subset a coding agent uses: ``input`` as a string or message items, ``instructions``,
``previous_response_id`` (kept in this process, see ``ServerSettings.responses_ttl_s``),
streaming events, usage. Tools are accepted and ignored (Codex sends its shell tool with every
request; the models here call no tools), as are input items that are not messages (tool calls
and their outputs, reasoning). The mucode extras (``tests``, ``io_tests``, ``n``, ``turns``,
``selection``) work as in chat.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from mucode.engine.options import Selection
from mucode.engine.trace import SolveResult
from mucode.sandbox import IOTest

from .chat import ChatMessageIn, OpenAIBaseModel

TEXT_PARTS = ("input_text", "output_text", "text")


class ResponsesRequest(OpenAIBaseModel):
    model: str
    input: str | list[dict[str, Any]] = Field(..., description="A user message, or message items.")
    instructions: str | None = Field(None, description="A system message for this request only.")
    previous_response_id: str | None = Field(
        None, description="Continue a stored response's conversation (kept in memory, see the docs)."
    )
    stream: bool = False
    store: bool = Field(True, description="Keep this response for `previous_response_id` and GET.")
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    tools: list[dict[str, Any]] | None = Field(None, description="Accepted and ignored: no tool calls here.")
    tool_choice: str | dict[str, Any] | None = Field(None, description="Accepted and ignored.")
    user: str | None = None

    # --- mucode extras, as in chat ------------------------------------------------------------
    tests: list[str] | None = None
    io_tests: list[IOTest] | None = None
    n: int | None = Field(None, ge=1, le=64)
    turns: int | None = Field(None, ge=1, le=10)
    selection: Selection | None = None

    def input_messages(self) -> list[ChatMessageIn]:
        """The input as chat messages: message items (with or without ``type``) only."""
        if isinstance(self.input, str):
            return [ChatMessageIn(role="user", content=self.input)]
        messages = []
        for item in self.input:
            if item.get("type", "message") != "message" or item.get("role") not in (
                "system",
                "developer",
                "user",
                "assistant",
            ):
                continue
            content = item.get("content")
            if isinstance(content, list):
                content = "".join(
                    str(part.get("text", "")) for part in content if part.get("type") in TEXT_PARTS
                )
            messages.append(ChatMessageIn(role=item["role"], content=str(content or "")))
        return messages


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)


class OutputMessage(BaseModel):
    type: Literal["message"] = "message"
    id: str = Field(default_factory=lambda: f"msg_{uuid.uuid4().hex}")
    status: Literal["in_progress", "completed"] = "completed"
    role: Literal["assistant"] = "assistant"
    content: list[OutputText] = Field(default_factory=list)


class SummaryText(BaseModel):
    type: Literal["summary_text"] = "summary_text"
    text: str


class Reasoning(BaseModel):
    """mucode's search progress (turns, candidates, tests passed), as a reasoning summary."""

    type: Literal["reasoning"] = "reasoning"
    id: str = Field(default_factory=lambda: f"rs_{uuid.uuid4().hex}")
    summary: list[SummaryText] = Field(default_factory=list)


class ResponseUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: dict[str, int] = Field(default_factory=lambda: {"cached_tokens": 0})
    output_tokens_details: dict[str, int] = Field(default_factory=lambda: {"reasoning_tokens": 0})


class ResponseObject(BaseModel):
    id: str = Field(default_factory=lambda: f"resp_{uuid.uuid4().hex}")
    object: Literal["response"] = "response"
    created_at: int = Field(default_factory=lambda: int(time.time()))
    status: Literal["in_progress", "completed", "failed"] = "completed"
    model: str
    output: list[Reasoning | OutputMessage] = Field(default_factory=list)
    instructions: str | None = None
    previous_response_id: str | None = None
    usage: ResponseUsage | None = None
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_choice: str = "auto"
    parallel_tool_calls: bool = False
    temperature: float | None = None
    top_p: float | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    mucode: SolveResult | None = Field(None, description="The search trace (mucode models only).")

    @property
    def output_text(self) -> str:
        return "".join(
            part.text for item in self.output if isinstance(item, OutputMessage) for part in item.content
        )
