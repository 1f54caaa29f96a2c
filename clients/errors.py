"""The one exception the clients raise for an error answer, carrying the server's error body."""

from __future__ import annotations

from typing import Any

import httpx


class MucodeError(Exception):
    """The server answered an error (``status_code`` 4xx/5xx) or could not be reached (``None``)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status_code, self.type, self.code, self.param = (
            message,
            status_code,
            type,
            code,
            param,
        )
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: httpx.Response) -> MucodeError:
        try:
            error: dict[str, Any] = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            error = {"message": response.text[:300] or response.reason_phrase}
        retry = response.headers.get("retry-after")
        return cls(
            f"{response.status_code}: {error.get('message')}",
            status_code=response.status_code,
            type=error.get("type"),
            code=error.get("code"),
            param=error.get("param"),
            retry_after=float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
        )

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> MucodeError:
        error = data.get("error") or {}
        return cls(
            str(error.get("message", "the stream reported an error")),
            type=error.get("type"),
            code=error.get("code"),
            param=error.get("param"),
        )
