"""The API keeps the contract its OpenAPI document states, checked by schemathesis's property-based
fuzzing against a live server (scripted generator): no server errors, only documented status
codes and content types, responses that match their schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .helpers import LiveServer, server_settings

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_the_api_keeps_its_openapi_contract(tmp_path: Path) -> None:
    # A server of its own: the fuzzer queues jobs and fills limits that other tests should not see.
    server = LiveServer(server_settings(tmp_path))
    try:
        command = [
            sys.executable, "-m", "schemathesis.cli", "run", server.url + "/openapi.json",
            "--checks", CHECKS, "--max-examples", "40", "--seed", "20261130", "--no-color",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout[-10000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
