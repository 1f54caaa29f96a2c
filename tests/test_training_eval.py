"""`mucode eval` (pass rates per configuration and per turn, JSON + PNG, resumable) and the
HumanEval folds that keep training and evaluation apart."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mucode.engine.generators.base import Completion, Generator, SamplingParams
from mucode.engine.generators.scripted import ScriptedGenerator
from mucode.engine.options import SolveOptions
from mucode.engine.search import SearchEngine
from mucode.engine.trace import ChatMessage
from mucode.training.evaluate import EvaluationBusy, evaluate, one_writer
from mucode.training.problems import humaneval_folds, load_problem_set
from mucode.training.rollouts import label_traces
from mucode.training.sample_cache import SampleCache

from .helpers import Sandbox, run_cli, unset_env
from .toy_problems import NAMES, right, write_problems, wrong


def import_bench(name: str) -> ModuleType:
    """A script of bench/ (not a package) as a module."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_humaneval_folds_are_disjoint_stable_and_cover_the_set() -> None:
    a, b = humaneval_folds()
    ids_a, ids_b = {p.id for p in a}, {p.id for p in b}
    assert not ids_a & ids_b
    assert abs(len(a) - len(b)) <= 1
    assert ids_a | ids_b == {p.id for p in load_problem_set("humaneval")}
    assert [p.id for p in humaneval_folds()[0]] == [p.id for p in a]
    assert [p.id for p in load_problem_set("humaneval:fold1")] == [p.id for p in b]
    # `humaneval` is the problems with public tests; `humaneval:all` adds the 13 without.
    everything = load_problem_set("humaneval:all")
    assert len(everything) == 164
    assert [p.id for p in everything if p.public_tests] == [p.id for p in load_problem_set("humaneval")]
    assert sum(not p.public_tests for p in everything) == 13


def test_eval_reports_pass_rates_per_turn_and_resumes(tmp_path: Path) -> None:
    write_problems(tmp_path / "problems.jsonl")
    # Turn 1 is wrong, turn 2 right: greedy single-turn fails everything, multi-turn fixes it.
    script = {name: [[wrong(name)], [right(name)]] for name in NAMES}
    (tmp_path / "script.json").write_text(json.dumps(script))
    env = unset_env()
    args = [
        "eval", "--problems", str(tmp_path / "problems.jsonl"),
        "--out", str(tmp_path / "eval" / "report.json"),
        "--configs", "greedy-1,greedy-3,bon5-pt,bon5-pt+lv", "--generator", "scripted",
    ]  # fmt: skip
    done = run_cli(*args, "--limit", "99", env=env | {"MUCODE_SCRIPT": str(tmp_path / "script.json")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(NAMES)} of the {len(NAMES)} problems of" in done.stdout  # a limit past the end says so
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    results = {r["config"]: r for r in report["results"]}
    assert set(results) == {"greedy-1", "greedy-3", "bon5-pt"}  # pt+lv needs a verifier: skipped
    assert results["greedy-1"]["pass_rate"] == 0.0
    assert results["greedy-3"]["pass_rate_by_turn"] == [0.0, 100.0, 100.0]
    assert results["bon5-pt"]["pass_rate"] == 100.0
    assert results["bon5-pt"]["mean_turns"] == 2.0
    assert (tmp_path / "eval" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (tmp_path / "eval" / "report.greedy-3.jsonl").read_text().splitlines()
    assert len(rows) == len(NAMES)
    traces_file = tmp_path / "eval" / "report.greedy-3.traces.jsonl"
    traces = [json.loads(t) for t in traces_file.read_text().splitlines()]
    assert sorted(t["problem_id"] for t in traces) == sorted(json.loads(r)["problem"] for r in rows)
    assert all(len(t["turns"]) == 2 and t["turns"][1]["messages"][-1]["role"] == "user" for t in traces)
    # Every evaluation explains itself: each problem solved on turn 2, after feedback, by a
    # program unlike the one it was asked to fix; the turn-1 candidates were all wrong.
    for name, samples in (("greedy-3", 1), ("bon5-pt", 5)):
        r = results[name]
        assert (r["solved_after_feedback"], r["coverage"], r["selection_losses"]) == (
            len(NAMES),
            len(NAMES),
            0,
        )
        assert r["feedback_samples"] == samples * len(NAMES)
        assert (r["repeat_share"], r["improve_share"], r["slot_repeat_share"]) == (0.0, 1.0, 0.0)
        assert r["tokens_per_solved"] == r["completion_tokens"] // len(NAMES)
    greedy = results["greedy-1"]
    assert (greedy["coverage"], greedy["solved_after_feedback"], greedy["repeat_share"]) == (0, 0, None)
    # bench/humaneval_why.py compares two of them: greedy never passes, BoN always does.
    why = import_bench("humaneval_why")
    problems = load_problem_set(str(tmp_path / "problems.jsonl"))
    summary = asyncio.run(why.analyse(tmp_path / "eval" / "report.json", "greedy-1", "bon5-pt", problems))
    assert (summary["greedy-1"], summary["bon5-pt"], summary["gain_points"]) == (0, len(NAMES), 100.0)
    assert summary["turn1_candidate_accuracy"] == 0.0
    assert summary["losses"] == {}
    # Rows written before an option existed read as its default: they are not rerun either.
    older = [json.loads(r) for r in rows]
    for row in older:
        del row["options"]["fresh_samples"]
    rows = [json.dumps(r) for r in older]
    (tmp_path / "eval" / "report.greedy-3.jsonl").write_text("\n".join(rows) + "\n")
    again = run_cli(*args, env=env | {"MUCODE_SCRIPT": str(tmp_path / "script.json")})
    assert again.returncode == 0
    assert (tmp_path / "eval" / "report.greedy-3.jsonl").read_text().splitlines() == rows  # nothing rerun
    # A second evaluation of the same report while one runs fails at once and writes nothing.
    with one_writer(tmp_path / "eval" / "report.json"):
        busy = run_cli(*args, env=env | {"MUCODE_SCRIPT": str(tmp_path / "script.json")})
    assert busy.returncode == 2 and "another evaluation is writing" in busy.stderr, busy.stderr[-2000:]
    assert "Traceback" not in busy.stderr
    assert (tmp_path / "eval" / "report.greedy-3.jsonl").read_text().splitlines() == rows
    bad = run_cli("eval", "--problems", "nope", "--out", str(tmp_path / "x.json"), env=env)
    assert bad.returncode != 0
    assert "unknown problem set" in bad.stderr
    assert "Traceback" not in bad.stderr
    # The evaluation's candidates, labelled by the private tests: a verifier's held-out set.
    codes_file = tmp_path / "codes.jsonl"
    coded = run_cli(
        "train", "codes", "--problems", str(tmp_path / "problems.jsonl"), "--traces", str(traces_file),
        "--out", str(codes_file), env=env,
    )  # fmt: skip
    assert coded.returncode == 0, coded.stderr[-2000:]
    codes = [json.loads(line) for line in codes_file.read_text().splitlines()]
    assert len(codes) == 2 * len(NAMES)  # each problem's wrong first answer and right second one
    assert all(c["passed"] == ("sorted(xs)" in c["code"]) for c in codes)
    neither = run_cli("train", "codes", "--problems", str(tmp_path / "problems.jsonl"), "--out", "x", env=env)
    assert neither.returncode == 2 and "give --rollouts or --traces" in neither.stderr


def test_evaluate_refuses_a_report_another_evaluation_is_writing(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    generator = ScriptedGenerator([["x"]])
    with one_writer(out), pytest.raises(EvaluationBusy, match="another evaluation is writing"):
        asyncio.run(evaluate([], generator, None, ["greedy-1"], out, problem_set="toy"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.lock"]
    # The lock goes with its holder: the next evaluation may start.
    with one_writer(out):
        pass


def test_mbpp_schema_from_local_files(tmp_path: Path) -> None:
    """The `datasets` path online users take for MBPP, on a local file of the same schema."""
    rows: list[dict[str, Any]] = [
        {
            "task_id": 11,
            "text": "Write a python function to remove first and last occurrence of a given character.",
            "code": "def remove_Occ(s, ch):\n    return s.replace(ch, '', 1)[::-1].replace(ch, '', 1)[::-1]",
            "test_list": [
                'assert remove_Occ("hello","l") == "heo"',
                'assert remove_Occ("abcda","a") == "bcd"',
                'assert remove_Occ("PHP","P") == "H"',
            ],
            "test_setup_code": "",
            "challenge_test_list": [],
        }
    ]
    path = tmp_path / "mbpp.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (problem,) = load_problem_set(f"mbpp-file:{path}")
    assert problem.id == "mbpp/11"
    assert problem.entry_point == "remove_Occ"
    assert problem.public_tests == [rows[0]["test_list"][0]]
    assert len(problem.private_tests) == 2
    assert "def remove_Occ(s, ch):" in problem.prompt
    assert "return" not in problem.prompt


class CountingGenerator(Generator):
    """Answers depend on the seed only; counts what it was asked to generate."""

    backend, model = "counting", "counting-model"

    def __init__(self) -> None:
        self.calls = 0

    async def sample(self, messages: list[ChatMessage], params: SamplingParams) -> list[Completion]:
        self.calls += 1
        await asyncio.sleep(0.01)
        return [
            Completion(text=f"answer {params.seed}-{k}", prompt_tokens=3, completion_tokens=2)
            for k in range(params.n)
        ]

    async def complete(self, prompt: str, params: SamplingParams) -> list[Completion]:
        raise NotImplementedError


def test_sample_cache_shares_seeded_samples_across_configs_and_runs(tmp_path: Path) -> None:
    chat = [ChatMessage(role="user", content="write f")]
    seeded = SamplingParams(n=5, temperature=0.7, seed=3)

    async def scenario() -> None:
        inner = CountingGenerator()
        cache = SampleCache(inner, tmp_path / "samples.jsonl")
        # Concurrent identical requests (two configs on the same problem) generate once.
        first, second = await asyncio.gather(cache.sample(chat, seeded), cache.sample(chat, seeded))
        assert first == second
        assert inner.calls == 1
        assert cache.hits == 1
        assert [c.text for c in first] == [f"answer 3-{k}" for k in range(5)]
        # Anything that changes the request is a new request: seed, n, messages.
        await cache.sample(chat, seeded.model_copy(update={"seed": 4}))
        await cache.sample(chat, seeded.model_copy(update={"n": 1}))
        await cache.sample([*chat, ChatMessage(role="assistant", content="x")], seeded)
        assert inner.calls == 4
        # Unseeded requests are meant to differ: never cached.
        await cache.sample(chat, SamplingParams(n=1))
        await cache.sample(chat, SamplingParams(n=1))
        assert inner.calls == 6
        # A later run with the same model reads the file; another model does not share it.
        again = SampleCache(CountingGenerator(), tmp_path / "samples.jsonl")
        assert await again.sample(chat, seeded) == first
        assert again.inner.calls == 0  # type: ignore[attr-defined]
        other = CountingGenerator()
        other.model = "another-model"
        await SampleCache(other, tmp_path / "samples.jsonl").sample(chat, seeded)
        assert other.calls == 1

    asyncio.run(scenario())


def test_labelling_more_programs_than_the_sandbox_queues_at_once(sandbox: Sandbox, tmp_path: Path) -> None:
    """An evaluation's traces can hold thousands of programs: labelling hands them to the sandbox
    a bounded number at a time instead of overflowing its queue (SandboxBusy)."""
    write_problems(tmp_path / "problems.jsonl")
    problems = {p.id: p for p in load_problem_set(str(tmp_path / "problems.jsonl"))}
    first = next(iter(problems.values()))
    name = first.entry_point
    texts = [f"```python\ndef {name}(xs):\n    return sorted(xs)[{k}:]\n```" for k in range(60)]
    engine = SearchEngine(ScriptedGenerator([texts]), sandbox.pool)
    options = SolveOptions(n=len(texts), turns=1, greedy_candidate=False)
    trace = sandbox.loop.run(engine.solve(first, options))
    traces = [trace.model_copy(update={"problem_id": pid}) for pid in problems]  # 6 × 60 programs
    codes = sandbox.loop.run(label_traces(traces, problems, sandbox.pool))
    assert len(codes) == len(problems) * len(texts) > 256
    # Only the first problem's entry point is defined, and only sorted(xs)[0:] is right.
    assert [c.passed for c in codes] == [pid == first.id and k == 0 for pid in problems for k in range(60)]
