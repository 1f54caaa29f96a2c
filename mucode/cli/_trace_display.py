"""The live view of a search on the terminal: each turn's candidates as they are judged."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from mucode.engine.search import SearchEvent
    from mucode.engine.trace import SolveResult, TurnRecord


class TraceDisplay:
    """Prints turn starts, one line per candidate (→ marks the chosen one) and the verdict.

    The same display serves a local search (``on_event``) and a server's stream (``started`` and
    ``finished`` from its events), so both look alike.
    """

    def __init__(self, console: Console, *, n: int, public_total: int) -> None:
        self.console = console
        self.n = n
        self.public_total = public_total

    def on_event(self, event: SearchEvent) -> None:
        if event.kind == "turn_started":
            self.started(event.turn, event.turns)
        elif event.record is not None:
            self.finished(event.record)  # the turn's table says what each candidate's run gave

    def started(self, turn: int, of: int) -> None:
        self.console.print(f"[bold]turn {turn}/{of}[/]: sampling {self.n} candidates ...")

    def finished(self, record: TurnRecord) -> None:
        for c in record.candidates:
            mark = "→" if c.index == record.selected else " "
            score = "" if c.verifier_score is None else f" verifier {c.verifier_score:+.2f}"
            notes = [f"same code as #{c.duplicate_of + 1}"] if c.duplicate_of is not None else []
            if c.refill:
                notes.append("fresh sample in place of a repeat")
            if c.repeat_of_turn is not None:
                notes.append(f"repeats turn {c.repeat_of_turn}, not rerun")
            note = f" ({'; '.join(notes)})" if notes else ""
            self.console.print(
                f"  {mark} #{c.index + 1}: passes {c.public_passed_count}/{self.public_total}"
                f"{score} [{c.extraction}]{note}"
            )
        t = record.timings
        self.console.print(
            f"  [dim]{record.usage.completion_tokens} tokens, generation {t.generation_ms:.0f} ms, "
            f"sandbox {t.sandbox_ms:.0f} ms[/]"
        )

    def verdict(self, result: SolveResult) -> None:
        agreed = result.turns[-1].agreement
        if result.stop_reason == "no_tests" and agreed is not None:
            verdict = f"[bold yellow]NO TESTS[/] ({agreed.summary})"
        elif result.stop_reason == "no_tests":
            verdict = "[bold yellow]NO TESTS[/] (nothing was run to check the answer)"
        elif result.public_all_passed:
            verdict = f"[bold green]PASSED[/] {result.public_passed_count}/{result.public_total} public tests"
        else:
            verdict = f"[bold red]FAILED[/] {result.public_passed_count}/{result.public_total} public tests"
        self.console.print(
            f"{verdict} after {len(result.turns)} turn(s), {result.usage.total_tokens} tokens, "
            f"{result.timings.total_ms / 1000:.1f} s"
        )
