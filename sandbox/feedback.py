"""Turns raw harness replies into an ``ExecutionResult`` and writes the ``feedback`` text: the
message the generator reads on its next turn, so it must say what failed and why, concretely."""

from __future__ import annotations

from typing import Any

from .types import ExecutionRequest, ExecutionResult, TestResult, TestStatus

MAX_DETAILED = 5  # failing tests described in full; the rest are counted
MAX_FEEDBACK_CHARS = 6000


def build_result(request: ExecutionRequest, reply: dict[str, Any], isolation: str) -> ExecutionResult:
    labels = [(t, "assert") for t in request.tests] + [
        (f"stdin #{k + 1}", "io") for k in range(len(request.io_tests))
    ]
    results: list[TestResult] = []
    for (label, kind), outcome in zip(labels, reply["results"], strict=True):
        # A test suite (unittest class, pytest functions) reports one outcome per case.
        cases = (
            [(name, outcome["suite"], status, message, ms) for name, status, message, ms in outcome["cases"]]
            if isinstance(outcome, dict)
            else [(label, kind, *outcome)]
        )
        results += [
            TestResult(
                test=test, kind=k, status=TestStatus(status), message=message, duration_ms=round(ms, 3)
            )
            for test, k, status, message, ms in cases
        ]
    notes: list[str] = reply.get("notes", [])
    passed_count = sum(r.status is TestStatus.passed for r in results)
    return ExecutionResult(
        passed=passed_count == len(results) and not notes,
        results=results,
        passed_count=passed_count,
        stdout=reply["stdout"],
        stderr=reply["stderr"],
        stdout_truncated=reply["stdout_truncated"],
        stderr_truncated=reply["stderr_truncated"],
        duration_ms=round(reply["duration_ms"], 3),
        feedback=write_feedback(results, notes, reply["stderr"]),
        isolation=isolation,
    )


def lost_result(
    request: ExecutionRequest, status: TestStatus, why: str, isolation: str, ms: float
) -> ExecutionResult:
    """Every test fails with the same reason: the run ended without the harness reporting."""
    reply = {
        "results": [(status.value, why, 0.0)] * (len(request.tests) + len(request.io_tests)),
        "notes": [] if request.tests or request.io_tests else [why],
        "stdout": "", "stderr": "", "stdout_truncated": False, "stderr_truncated": False,
        "duration_ms": ms,
    }  # fmt: skip
    return build_result(request, reply, isolation)


def write_feedback(results: list[TestResult], notes: list[str], stderr: str) -> str:
    lines: list[str] = []
    total = len(results)
    passed = sum(r.status is TestStatus.passed for r in results)
    for note in notes:
        lines.append("The code could not be run: " + note if not results else note)
    if total:
        lines.insert(
            0, f"All {total} tests passed." if passed == total else f"{passed} of {total} tests passed."
        )
    elif not notes:
        lines.append("The code ran without errors (no tests were given).")
    shown = 0
    failing = [r for r in results if r.status is not TestStatus.passed]
    for result in failing:
        if notes and result.message.startswith("not run:"):
            continue  # the load error above already says why
        if shown == MAX_DETAILED:
            lines.append(f"... and {len(failing) - shown} more tests did not pass.")
            break
        shown += 1
        title = "Test with " + result.test if result.kind == "io" else result.test
        lines.append(f"Test {result.status.value.upper()}: {headline(title)}")
        lines.extend("  " + line for line in result.message.splitlines())
    if (notes or failing) and stderr.strip():
        tail = stderr.strip().splitlines()[-5:]
        lines.append("stderr (last lines):")
        lines.extend("  " + line for line in tail)
    text = "\n".join(lines)
    return text if len(text) <= MAX_FEEDBACK_CHARS else text[: MAX_FEEDBACK_CHARS - 20] + "\n...<truncated>"


def headline(test: str) -> str:
    """The line that names a test: its last statement (the assert, or the ``check(f)`` call)."""
    lines = [line for line in test.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else test
    return last if len(last) <= 200 else last[:190] + "..."
