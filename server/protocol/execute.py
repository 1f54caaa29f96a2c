"""``POST /v1/execute``: the sandbox's own request and result models are the wire format."""

from __future__ import annotations

from mucode.sandbox import ExecutionRequest, ExecutionResult

__all__ = ["ExecutionRequest", "ExecutionResult"]
