"""With the real default model (``make test-model``): the sha256-pinned bundle is pulled and
verified, and ``mucode solve`` solves HumanEval problems with the default backend."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from mucode.engine.checkpoint import read_manifest
from mucode.engine.model_store import GGUF_SHA256, GGUF_SIZE, pull_gguf
from mucode.problems import Problem, load_humaneval
from mucode.sandbox import ExecutionRequest, execute_sync
from mucode.training.problems import load_problem_set

from .helpers import run_cli, serve_process

pytestmark = pytest.mark.model


def test_bundle_is_pulled_and_matches_its_hash() -> None:
    path = pull_gguf()
    assert path.stat().st_size == GGUF_SIZE
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    assert digest.hexdigest() == GGUF_SHA256


@pytest.mark.parametrize("task", ["HumanEval/0", "HumanEval/2", "HumanEval/4"])
def test_solves_humaneval_problems_end_to_end(tmp_path: Path, task: str) -> None:
    problem = next(p for p in load_humaneval() if p.id == task)
    (tmp_path / "problem.md").write_text(problem.prompt)
    (tmp_path / "tests.py").write_text("\n".join(problem.public_tests) + "\n")
    files = [str(tmp_path / "problem.md"), "--tests", str(tmp_path / "tests.py")]
    done = run_cli("solve", *files, "--n", "3", "--turns", "3", "--json", timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    trace = json.loads(done.stdout)
    assert trace["public_all_passed"]
    assert trace["generator"].startswith(("llama-cpp:", "transformers:"))
    graded = execute_sync(ExecutionRequest(code=trace["final_code"], tests=problem.private_tests))
    assert graded.passed, graded.feedback


@pytest.mark.parametrize("backend", ["vllm", "llama-cpp", "transformers"])
def test_each_installed_backend_generates_code(backend: str) -> None:
    import asyncio
    import importlib.util

    from mucode.engine import prompts
    from mucode.engine.extract import extract_code
    from mucode.engine.generators.base import Completion, SamplingParams
    from mucode.engine.loading import load_generator
    from mucode.engine.settings import EngineSettings

    if importlib.util.find_spec({"llama-cpp": "llama_cpp"}.get(backend, backend)) is None:
        pytest.skip(f"{backend} is not installed")
    problem = next(p for p in load_humaneval() if p.id == "HumanEval/2")

    fmt = prompts.DEFAULT
    chat = fmt.first_turn(problem)

    async def run() -> tuple[list[str], Completion, list[str | Completion]]:
        generator = load_generator(EngineSettings(generator=backend))
        try:
            params = SamplingParams(n=2, temperature=0.7, max_tokens=256, seed=3)
            free = [c.text for c in await generator.sample(chat, params)]
            # The default format's way: the answer opened with a python fence, cut at the closing one.
            prefilled = SamplingParams(
                n=1, temperature=0.0, max_tokens=256, prefill=fmt.prefill, stop=fmt.stop
            )
            (continued,) = await generator.sample(chat, prefilled)
            streamed = [piece async for piece in generator.stream(chat, prefilled)]
            return free, continued, streamed
        finally:
            await generator.close()

    texts, continued, streamed = asyncio.run(run())
    # Every backend streams tokens: many pieces, the same greedy answer.
    *pieces, last = streamed
    assert len(pieces) > 5 and "".join(str(p) for p in pieces) == continued.text
    assert isinstance(last, Completion) and last.text == continued.text
    assert len(texts) == 2
    assert all(extract_code(t, "truncate_number").code for t in texts)
    assert not continued.text.lstrip().startswith("```") and "```" not in continued.text
    answer = fmt.answer_text(continued.text, continued.finish_reason, prefilled=True)
    extracted = extract_code(answer, "truncate_number")
    assert extracted.how == "fenced" and extracted.code and "def truncate_number" in extracted.code


def solve_through_sdk(url: str, problem: Problem, **options: int) -> tuple[Any, Any, dict[str, Any]]:
    """A problem and its public tests through the official openai package, as a client sends
    them: (the client, the response, the search's trace in it)."""
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=900)
    response = client.chat.completions.create(
        model="mucode",
        messages=[{"role": "user", "content": problem.prompt}],
        extra_body={"tests": problem.public_tests, **options},
    )
    return client, response, response.model_extra["mucode"]  # type: ignore[index]


def test_served_model_solves_through_the_openai_sdk(tmp_path: Path) -> None:
    """`mucode serve` with its defaults (what `make serve` runs), driven by the official openai
    package: a HumanEval problem with its tests in extra_body, then a fill-in-the-middle
    completion through the model's FIM tokens."""
    problem = next(p for p in load_humaneval() if p.id == "HumanEval/4")
    with serve_process(tmp_path) as (url, _):
        client, response, trace = solve_through_sdk(url, problem, n=3, turns=3)
        assert trace["public_all_passed"], response.choices[0].message.content
        graded = execute_sync(ExecutionRequest(code=trace["final_code"], tests=problem.private_tests))
        assert graded.passed, graded.feedback
        assert response.usage is not None
        assert response.usage.completion_tokens == trace["usage"]["completion_tokens"]
        fim = client.completions.create(
            model="mucode",
            prompt="def is_even(n: int) -> bool:\n    return ",
            suffix="\n\n\nassert is_even(4)\n",
            max_tokens=16,
            temperature=0,
        )
        assert fim.choices[0].text.strip(), "the model wrote nothing into the middle"


@pytest.mark.timeout(1800)
def test_shipped_checkpoint_installs_and_solves(tmp_path: Path) -> None:
    """The checkpoint in the package (the DataFrameBench generator adapter and the likelihood
    verifier): merged into the real base for vLLM and transformers (a CLI solve names the generator
    and verifier in its trace), and converted to a GGUF LoRA that `mucode serve` runs on llama.cpp
    (/health names the adapter, scoped to data-library problems, and the verifier; the openai SDK
    gets a HumanEval answer from the base and a DataFrameBench one from the adapter, ranked by the
    likelihood llama.cpp read while sampling)."""
    target = tmp_path / "checkpoint"
    done = run_cli("models", "install-checkpoint", "--target", str(target), timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_manifest(target).generator_lora == "generator-lora.gguf"
    verifier = "likelihood"
    problem = next(p for p in load_humaneval() if p.id == "HumanEval/2")
    (tmp_path / "problem.md").write_text(problem.prompt)
    (tmp_path / "tests.py").write_text("\n".join(problem.public_tests) + "\n")
    files = [str(tmp_path / "problem.md"), "--tests", str(tmp_path / "tests.py")]
    env = {**os.environ, "MUCODE_CHECKPOINT": str(target), "MUCODE_GENERATOR": "transformers"}
    done = run_cli("solve", *files, "--n", "2", "--turns", "1", "--json", env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    trace = json.loads(done.stdout)
    assert trace["generator"] == f"transformers:{(target / 'generator').resolve()}"
    assert trace["verifier"] == verifier  # transformers reads no likelihood: no scores there

    with serve_process(tmp_path, checkpoint=str(target)) as (url, health):
        assert health["generator"]["backend"] == "llama-cpp"
        assert health["generator"]["model"] == pull_gguf().name
        # Scoped: HumanEval/2 names no data library, so the base model answers it.
        assert health["generator"]["adapter"] == "generator-lora.gguf on data-libraries problems"
        assert health["generator"]["verifier"] == verifier
        _, _, trace = solve_through_sdk(url, problem, n=2, turns=1)
        assert trace["generator"] == f"llama-cpp:{pull_gguf().name}"  # the base answered
        assert all(c["verifier_score"] is not None for c in trace["turns"][0]["candidates"])
        library = load_problem_set("dataframebench:test")[0]
        _, _, trace = solve_through_sdk(url, library, n=2, turns=1)
        assert trace["generator"] == f"llama-cpp:{pull_gguf().name} + {health['generator']['adapter']}"
