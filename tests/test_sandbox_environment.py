"""The scientific sandbox environment: numpy/pandas code runs against unittest classes, the
environment is read-only, its heavy modules are imported once per worker, the memory limit sits
on top of them, and /health says what runs."""

from __future__ import annotations

from pathlib import Path

import httpx

from mucode.sandbox import TestStatus
from mucode.sandbox.environment import default_path

from .helpers import LiveServer, Sandbox, server_settings

FRAME = """\
import numpy as np
import pandas as pd


def task_func(n):
    return pd.DataFrame({"a": np.arange(n), "b": np.arange(n) * 2})
"""

SUITE = """\
import unittest

import pandas as pd


class TestFrame(unittest.TestCase):
    def setUp(self):
        self.df = task_func(3)

    def test_shape(self):
        self.assertEqual(self.df.shape, (3, 2))

    def test_total(self):
        self.assertEqual(self.df["b"].sum(), 7)

    def test_frame(self):
        pd.testing.assert_frame_equal(self.df, pd.DataFrame({"a": [0, 1, 2], "b": [0, 2, 4]}))
"""


def test_numpy_and_pandas_code_against_a_unittest_class(science: Sandbox) -> None:
    result = science.run(FRAME, [SUITE])
    assert [(r.test, r.status) for r in result.results] == [
        ("TestFrame.test_frame", TestStatus.passed),
        ("TestFrame.test_shape", TestStatus.passed),
        ("TestFrame.test_total", TestStatus.failed),
    ]
    assert result.results[2].message.startswith("AssertionError: 6 != 7")
    assert 'self.assertEqual(self.df["b"].sum(), 7)' in result.feedback


def test_plain_asserts_compare_library_objects_as_themselves(science: Sandbox) -> None:
    tests = [
        "assert task_func(2).shape == (2, 2)",
        "assert list(task_func(2)['b']) == [0, 2]",
        "import numpy as np\nassert (task_func(3)['a'].to_numpy() == np.arange(3)).all()",
        "assert task_func(3)['b'].max() == 5",
    ]
    result = science.run(FRAME, tests)
    assert [r.status for r in result.results] == [TestStatus.passed] * 3 + [TestStatus.failed]
    assert result.results[3].message == "task_func(3)['b'].max() returned 4, expected 5"


def test_the_environment_is_read_only(science: Sandbox) -> None:
    path = default_path("scientific")
    code = (
        "import os, numpy\n"
        "def attempts():\n"
        "    outcomes = []\n"
        f"    for target in [{str(path)!r} + '/planted', os.path.dirname(numpy.__file__) + '/planted.py']:\n"
        "        try:\n"
        "            open(target, 'w').write('x')\n"
        "            outcomes.append('written')\n"
        "        except OSError as exc:\n"
        "            outcomes.append(exc.errno)\n"
        "    return outcomes\n"
    )
    result = science.run(code, ["assert attempts() == [30, 30]"])  # EROFS
    assert result.passed, result.feedback
    assert not (path / "planted").exists()


def test_heavy_modules_are_imported_once_per_worker(science: Sandbox) -> None:
    environment = science.pool.stats().environment
    assert environment is not None and environment.profile == "scientific"
    assert {"numpy", "pandas", "matplotlib.pyplot", "sklearn"} <= set(environment.preload)
    assert environment.preload_mb is not None and environment.preload_mb > 100
    restarts = science.pool.stats().worker_restarts
    probe = "import sys\nalready = sorted(m for m in ('numpy', 'pandas', 'scipy') if m in sys.modules)\n"
    for _ in range(4):
        # Code that imports pandas runs where it is loaded already ...
        result = science.run(
            probe + "import pandas as pd\n", ["assert already == ['numpy', 'pandas', 'scipy']"]
        )
        assert result.passed, result.feedback
        # ... and code that does not, in a plain worker, whose smaller address space forks faster.
        result = science.run(probe + "import json\n", ["assert already == []"])
        assert result.passed, result.feedback
    assert science.pool.stats().worker_restarts == restarts


def test_the_memory_limit_is_the_programs_own_on_top_of_the_preloaded_modules(science: Sandbox) -> None:
    allocate = "import numpy as np\ndef grab(mb):\n    return int(np.ones(mb * 2**17).sum())\n"
    assert science.run(allocate, ["assert grab(150) == 150 * 2**17"], memory_mb=256).passed
    result = science.run(allocate, ["assert grab(400) == 400 * 2**17"], memory_mb=256)
    assert result.results[0].status is TestStatus.error
    assert "MemoryError" in result.results[0].message


def test_matplotlib_and_polars_run(science: Sandbox) -> None:
    code = (
        "import matplotlib.pyplot as plt\nimport polars as pl\n"
        "def plot():\n    fig, ax = plt.subplots()\n    ax.bar(['a', 'b'], [1, 2])\n"
        "    fig.savefig('chart.png')\n    return ax\n"
        "def frame():\n    return pl.DataFrame({'x': [1, 2, 3]}).select(pl.col('x').sum()).item()\n"
    )
    tests = ["import matplotlib.axes\nassert isinstance(plot(), matplotlib.axes.Axes)", "assert frame() == 6"]
    result = science.run(code, tests)
    assert result.passed, result.feedback


def test_health_names_the_environment_and_execute_runs_pandas_against_unittest(tmp_path: Path) -> None:
    server = LiveServer(server_settings(tmp_path, env=str(default_path("scientific"))))
    try:
        body = httpx.get(server.url + "/health", timeout=30).json()
        executed = httpx.post(server.url + "/v1/execute", json={"code": FRAME, "tests": [SUITE]}, timeout=60)
    finally:
        server.stop()
    assert executed.status_code == 200, executed.text
    results = executed.json()["results"]
    assert [(r["test"], r["kind"], r["status"]) for r in results] == [
        ("TestFrame.test_frame", "unittest", "passed"),
        ("TestFrame.test_shape", "unittest", "passed"),
        ("TestFrame.test_total", "unittest", "failed"),
    ]
    assert results[2]["message"].startswith("AssertionError: 6 != 7")
    environment = body["sandbox"]["environment"]
    assert environment["profile"] == "scientific"
    assert environment["path"] == str(default_path("scientific"))
    assert {"numpy", "pandas", "polars", "scikit-learn"} <= set(environment["packages"])
    assert "pandas" in environment["preload"]
