"""The error envelope every failed request gets, as OpenAI sends it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    message: str = Field(..., description="What went wrong, for a person.")
    type: str = Field(..., description="invalid_request_error, authentication_error, not_found_error, ...")
    param: str | None = Field(None, description="The request field at fault, when there is one.")
    code: str | None = Field(None, description="A stable machine-readable reason, e.g. `model_not_found`.")


class ErrorResponse(BaseModel):
    error: ErrorDetail
