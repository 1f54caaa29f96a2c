"""``mucode execute`` as a user runs it: a subprocess with files."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .helpers import run_cli


def test_execute_reports_failures(tmp_path: Path) -> None:
    (tmp_path / "solution.py").write_text("def f(x):\n    return x + 1\n")
    (tmp_path / "tests.py").write_text("assert f(1) == 2\nassert f(1) == 3\n")
    done = run_cli("execute", str(tmp_path / "solution.py"), "--tests", str(tmp_path / "tests.py"))
    assert done.returncode == 1
    assert "f(1) returned 2, expected 3" in done.stdout
    assert "1 of 2 tests passed" in done.stdout


def test_execute_json_and_success(tmp_path: Path) -> None:
    (tmp_path / "solution.py").write_text("def f(x):\n    return x + 1\n")
    (tmp_path / "tests.py").write_text("def check(g):\n    assert g(1) == 2\n\ncheck(f)\n")
    done = run_cli("execute", str(tmp_path / "solution.py"), "--tests", str(tmp_path / "tests.py"), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["passed"] is True
    assert len(result["results"]) == 1


def test_execute_io_tests(tmp_path: Path) -> None:
    (tmp_path / "solution.py").write_text("print(int(input()) * 2)\n")
    (tmp_path / "io.json").write_text(json.dumps([{"input": "2", "output": "4"}]))
    done = run_cli("execute", str(tmp_path / "solution.py"), "--io-tests", str(tmp_path / "io.json"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_execute_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    missing = run_cli("execute", str(tmp_path / "nope.py"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    (tmp_path / "solution.py").write_text("x = 1\n")
    (tmp_path / "tests.py").write_text("assert (\n")
    broken = run_cli("execute", str(tmp_path / "solution.py"), "--tests", str(tmp_path / "tests.py"))
    assert broken.returncode == 2
    assert "line 1" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_bad_settings_and_options_name_the_field_without_a_traceback(tmp_path: Path) -> None:
    """Every command group turns pydantic's validation errors into one line naming the field."""
    env = {**os.environ, "MUCODE_DEFAULT_N": "0"}
    serve = run_cli("serve", env=env)
    assert serve.returncode == 2
    assert "default_n:" in serve.stderr
    assert "Traceback" not in serve.stderr
    (tmp_path / "codes.jsonl").write_text("")
    verifier = run_cli(
        "train",
        "verifier",
        str(tmp_path / "codes.jsonl"),
        "--base",
        "x",
        "--out",
        str(tmp_path),
        "--loss",
        "nope",
    )
    assert verifier.returncode == 2
    assert "loss:" in verifier.stderr
    assert "Traceback" not in verifier.stderr


def test_sandbox_setup_info_and_a_unittest_file(tmp_path: Path) -> None:
    """`mucode sandbox setup` builds an environment (the minimal profile: a venv and its manifest,
    seconds), `info` names it, and code runs in it against a unittest file."""
    root = Path(tempfile.mkdtemp(prefix="mucode-env-", dir="/var/tmp"))  # the sandbox user reads it
    try:
        root.chmod(0o755)
        built = run_cli("sandbox", "setup", "--profile", "minimal", "--path", str(root / "env"))
        assert built.returncode == 0, built.stderr
        env = {**os.environ, "MUCODE_SANDBOX_ENV": str(root / "env")}
        info = json.loads(run_cli("sandbox", "info", env=env).stdout)
        assert info["profile"] == "minimal" and info["path"] == str(root / "env")
        (tmp_path / "solution.py").write_text("import sys\ndef where():\n    return sys.prefix\n")
        (tmp_path / "tests.py").write_text(
            "import unittest\n\nclass TestWhere(unittest.TestCase):\n"
            f"    def test_prefix(self):\n        self.assertEqual(where(), {str(root / 'env')!r})\n"
        )
        done = run_cli(
            "execute", str(tmp_path / "solution.py"), "--tests", str(tmp_path / "tests.py"), "--json", env=env
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert [r["test"] for r in json.loads(done.stdout)["results"]] == ["TestWhere.test_prefix"]
    finally:
        shutil.rmtree(root)


def test_sandbox_setup_and_a_missing_environment_are_clear_errors(tmp_path: Path) -> None:
    unknown = run_cli("sandbox", "setup", "--profile", "quantum", "--path", str(tmp_path / "env"))
    assert unknown.returncode == 2
    assert "unknown profile 'quantum'" in unknown.stderr and "Traceback" not in unknown.stderr
    (tmp_path / "solution.py").write_text("x = 1\n")
    env = {**os.environ, "MUCODE_SANDBOX_ENV": str(tmp_path / "missing")}
    missing = run_cli("execute", str(tmp_path / "solution.py"), env=env)
    assert missing.returncode == 2
    assert f"no Python environment at {tmp_path / 'missing'}" in missing.stderr.replace("\n", "")
    assert "Traceback" not in missing.stderr
