"""The per-request size limits every endpoint shares (MUCODE_MAX_CODE_BYTES, MUCODE_MAX_TESTS)."""

from __future__ import annotations

from .errors import APIError, PayloadTooLarge
from .settings import ServerSettings


def enforce_limits(settings: ServerSettings, *, tests: int, code: str | None = None, at: str = "") -> None:
    """The per-request size limits every endpoint shares: 413 for code bytes, 422 for test count.
    ``at`` is where the checked object sits in the body (``requests.3.`` in a batch)."""
    if code is not None and len(code.encode("utf-8")) > settings.max_code_bytes:
        raise PayloadTooLarge(f"code is larger than {settings.max_code_bytes} bytes", param=f"{at}code")
    if tests > settings.max_tests:
        raise APIError(
            422,
            f"at most {settings.max_tests} tests per request (got {tests})",
            param=f"{at}tests",
            code="too_many_tests",
        )
