"""The web playground end to end in headless Chromium (Playwright driving Debian's chromium):
run a problem and see both turns drawn with the passing candidate chosen, cancel a run, see a bad
request's error, use the Execute tab, enter an API key. Screenshots go to build/screenshots/."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import LiveServer, sandbox_busy_processes, server_settings

SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SLOW = "```python\ndef double(x):\n    import time\n    time.sleep(60)\n    return 2 * x\n```"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (the dev extra installs it)")
    if executable is None:
        pytest.skip("no Chromium here and none could be installed (`.ci/run` installs Debian's chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def test_run_draws_two_turns_and_the_chosen_answer(page: Any, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('server ok')")
    page.fill("#problem", 'def double(x):\n    """Return twice x."""\n')
    page.fill("#tests", "assert double(2) == 4\nassert double(0) == 0")
    page.fill("#opt-n", "2")
    page.click("#run")
    page.wait_for_selector("#final:not([hidden])", timeout=30000)
    assert page.locator(".turn").count() == 2
    first_choice = page.locator("#turn-1 .candidate.selected")
    assert "passes 1/2" in first_choice.inner_text()
    assert "feedback sent to turn 2" in first_choice.inner_text()
    chosen = page.locator("#turn-2 .candidate.selected")
    assert "passes 2/2" in chosen.inner_text()
    assert "chosen" in chosen.inner_text()
    assert page.locator("#turn-2 .prompt-link").get_attribute("href") == "#t1-c0"
    assert "same code as #1" in page.locator("#turn-2").inner_text()  # both samples identical
    assert "return 2 * x" in page.inner_text("#final-code")
    assert "Passed 2/2 public tests after 2 turn(s)" in page.inner_text("#verdict")
    assert "completion" in page.inner_text("#totals")
    assert "sandbox" in page.inner_text("#totals")
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename.endswith(".json")
    page.screenshot(path=str(SHOTS / "playground-solved.png"), full_page=True)


def test_without_tests_the_verdict_says_how_the_answer_was_chosen(
    page: Any, agreeing_server: LiveServer
) -> None:
    page.goto(agreeing_server.url + "/")
    page.fill("#problem", 'def double(x):\n    """Return twice x."""\n')
    page.fill("#tests", "")  # the form keeps what an earlier run typed
    page.fill("#opt-n", "3")
    page.click("#run")
    page.wait_for_selector("#final:not([hidden])", timeout=30000)
    verdict = page.inner_text("#verdict")
    assert verdict.startswith(
        "No tests given: chosen by agreement of 2 of 3 candidates on 3 generated inputs"
    )
    assert "Passed" not in verdict and "Failed" not in verdict
    assert page.locator("#verdict.unchecked").count() == 1
    assert "agreement" in page.inner_text("#totals")
    page.set_viewport_size({"width": 420, "height": 900})
    page.screenshot(path=str(SHOTS / "playground-narrow.png"), full_page=True)


def test_bad_request_shows_its_error(page: Any, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/")
    page.fill("#opt-n", "0")
    page.click("#run")
    page.wait_for_selector("#error:not([hidden])")
    assert "options.n" in page.inner_text("#error")
    page.fill("#opt-n", "2")
    page.fill("#tests", '[{"input": "1"')
    page.keyboard.press("Control+Enter")
    page.wait_for_function("document.getElementById('error').textContent.includes('not valid JSON')")
    page.screenshot(path=str(SHOTS / "playground-error.png"), full_page=True)


def test_execute_tab(page: Any, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/")
    page.click("#tab-execute")
    page.fill("#exec-code", "def double(x):\n    return x + 2")
    page.fill("#exec-tests", "assert double(2) == 4\nassert double(0) == 0")
    page.click("#execute")
    page.wait_for_selector("#exec-result .verdict")
    text = page.inner_text("#exec-result")
    assert "Failed: 1/2 tests" in text
    assert "double(0) returned 2, expected 0" in text
    page.screenshot(path=str(SHOTS / "playground-execute.png"), full_page=True)


@pytest.fixture(scope="module")
def slow_keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = server_settings(tmp_path_factory.mktemp("pg-slow"), script=[[SLOW]], timeout_s=50)
    settings.api_keys = ["sk-play"]
    server = LiveServer(settings)
    yield server
    server.stop()


def test_api_key_entry_and_cancel(page: Any, slow_keyed_server: LiveServer) -> None:
    page.goto(slow_keyed_server.url + "/")
    page.wait_for_selector("#key-box:not([hidden])")
    page.fill("#api-key", "sk-play")
    page.click("#save-key")
    page.wait_for_function("document.getElementById('status').textContent.includes('server ok')")
    page.fill("#opt-n", "1")
    page.click("#run")
    page.wait_for_selector("#turn-1 .sampling")
    # Progress shows live: the candidate is written and its program is being tested.
    page.wait_for_function(
        "document.querySelector('#turn-1 .sampling').textContent.includes('testing 1 distinct program…')"
    )
    deadline = time.monotonic() + 15
    while sandbox_busy_processes(slow_keyed_server) == 0:
        assert time.monotonic() < deadline, "the candidate never started"
        time.sleep(0.05)
    page.click("#cancel")
    page.wait_for_function("document.getElementById('status').textContent === 'cancelled'")
    assert page.is_enabled("#run")
    assert page.is_hidden("#error")
    deadline = time.monotonic() + 10
    while sandbox_busy_processes(slow_keyed_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_busy_processes(slow_keyed_server) == 0  # cancelling stopped the run on the server
    page.screenshot(path=str(SHOTS / "playground-cancelled.png"), full_page=True)


def test_no_key_box_on_an_open_server(page: Any, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('server ok')")
    assert page.is_hidden("#key-box")
