"""What goes into the sandbox and what comes out: the request, the result and the status enums.

``TestStatus`` is the verdict on the candidate's code, per test. Failures of the sandbox itself
(bubblewrap missing, worker crashed, queue full) are never a status here: they are exceptions
from ``mucode.sandbox.errors``, because "the user's code failed" is not "the sandbox broke".
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class TestStatus(StrEnum):
    __test__ = False  # not a pytest class

    passed = "passed"
    failed = "failed"  # ran to the end and the check said no
    error = "error"  # raised, exited, crashed, or did not run
    timeout = "timeout"  # still running at the time limit


class IOTest(BaseModel):
    """A stdin/stdout test: the program reads ``input`` and must print ``output``.

    Outputs are compared after normalising line endings and trailing whitespace.
    """

    __test__ = False
    model_config = ConfigDict(extra="forbid")

    input: str = Field("", description="Text fed to the program's stdin.")
    output: str = Field(..., description="Expected stdout.")


class ExecutionRequest(BaseModel):
    """Candidate code plus its tests. Limits left out take the sandbox defaults; limits above the
    configured maxima are rejected by ``SandboxLimits.resolve``."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(..., description="The candidate program (Python source).")
    tests: list[str] = Field(
        default_factory=list,
        description=(
            "Python tests, one entry per test: assert statements (`assert f(2) == 4`), or a whole test "
            "module, a `unittest.TestCase` class or pytest-style `test_*` functions, which reports "
            "one result per test method or function."
        ),
    )
    io_tests: list[IOTest] = Field(default_factory=list, description="stdin/stdout tests.")
    timeout_s: float | None = Field(None, gt=0, description="Wall-clock limit for the whole execution.")
    memory_mb: int | None = Field(None, gt=0, description="Address-space limit of the program.")


class TestResult(BaseModel):
    __test__ = False

    test: str = Field(
        ...,
        description="The assert statement, a suite case (`Class.method`, `function`), or `stdin #k`.",
    )
    kind: str = Field(..., description="`assert`, `unittest` or `pytest` (a suite's cases), or `io`.")
    status: TestStatus
    message: str = Field("", description="Why it did not pass: values, exception, or output diff.")
    duration_ms: float = 0.0


class ExecutionResult(BaseModel):
    passed: bool = Field(..., description="True only when every test was recorded passing by the harness.")
    results: list[TestResult]
    passed_count: int
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: float = Field(..., description="Time spent running inside the sandbox.")
    feedback: str = Field(..., description="Text for the generator's next turn: what failed and why.")
    isolation: str = Field(..., description="`bubblewrap`, or `unsafe` when the operator disabled isolation.")

    @property
    def total(self) -> int:
        return len(self.results)
