"""A user's wait: chat with tests through the official `openai` SDK, model `mucode`, the default
search (N=5, T=3), streamed, one request at a time, against a live `mucode serve` on the default
backend (llama.cpp). The baseline is an older commit's code (`--baseline-rev`), installed apart
and served the same way, in the same run.

Per server: median and p90 seconds per request, and of the time to the first `reasoning_content`
delta (the search's first word), over the first --problems HumanEval problems with public tests.

    .venv/bin/python bench/request_latency.py [--problems 8] [--baseline-rev 132ab08]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _machine import machine
from _server import free_port
from openai import OpenAI

from mucode.problems import Problem, load_humaneval

REPO = Path(__file__).resolve().parent.parent


def install_rev(rev: str, target: Path) -> Path:
    """The package as it was at ``rev``, installed (no dependencies: this venv's) under target."""
    tree = target / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev], check=True)
    site = target / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(tree)]
    subprocess.run(pip, check=True)
    return site


def serve(pythonpath: Path | None, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "MUCODE_PORT": str(port), "MUCODE_GENERATOR": "llama-cpp", "MUCODE_CACHE_TTL_S": "0"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    # Started from the log's folder: `-m` puts the working directory first on sys.path, and the
    # repository root's own mucode/ would shadow the installed baseline. Checked, not assumed.
    where = [sys.executable, "-c", "import mucode.engine.search as m; print(m.__file__)"]
    found = subprocess.run(where, env=env, cwd=log.parent, capture_output=True, text=True, check=True)
    expected = str(pythonpath) if pythonpath is not None else str(REPO)
    if not found.stdout.strip().startswith(expected):
        raise SystemExit(f"the server would run {found.stdout.strip()}, not the code under {expected}")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mucode.cli", "serve"], env=env, stdout=out, stderr=out, cwd=log.parent
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health").json()["status"] == "ok":
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("server did not start:\n" + log.read_text()[-3000:])


def one_request(client: OpenAI, problem: Problem) -> dict[str, Any]:
    started = time.perf_counter()
    first_reasoning = None
    content = ""
    stream = client.chat.completions.create(
        model="mucode",
        messages=[{"role": "user", "content": problem.prompt}],
        stream=True,
        extra_body={"tests": problem.public_tests, "n": 5, "turns": 3, "seed": 0},
    )
    for chunk in stream:
        if not chunk.choices:
            continue
        delta: Any = chunk.choices[0].delta
        if first_reasoning is None and (delta.model_extra or {}).get("reasoning_content"):
            first_reasoning = time.perf_counter() - started
        content += delta.content or ""
    return {
        "seconds": time.perf_counter() - started,
        "first_reasoning_s": first_reasoning,
        "answered": bool(content),
    }


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
    }


def measure(url: str, problems: list[Problem]) -> dict[str, Any]:
    client = OpenAI(base_url=url + "/v1", api_key="unused", timeout=1800)
    runs = [one_request(client, p) for p in problems]
    return {
        "seconds": spread([r["seconds"] for r in runs]),
        "first_reasoning_s": spread(
            [r["first_reasoning_s"] for r in runs if r["first_reasoning_s"] is not None]
        ),
        "answered": sum(r["answered"] for r in runs),
        "per_problem_s": [round(r["seconds"], 1) for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--baseline-rev", default="132ab08")
    args = parser.parse_args()

    problems = [p for p in load_humaneval() if p.public_tests][: args.problems]
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "problems": len(problems),
    }
    with tempfile.TemporaryDirectory() as tmp:
        site = install_rev(args.baseline_rev, Path(tmp))
        try:
            for name, path in (("baseline " + args.baseline_rev, site), ("this tree", None)):
                proc, url = serve(path, Path(tmp) / "server.log")
                try:
                    report[name] = measure(url, problems)
                finally:
                    proc.terminate()
                    proc.wait(60)
                print(name, json.dumps(report[name]), flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(Path(tmp) / "tree")])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
