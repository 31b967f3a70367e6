"""The web page (/ui/ on status) in real headless Chromium against the running stack.

Chromium is Debian's (scripts/chromium.sh installs it); Playwright drives it, since its own
browser download cannot work without the internet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from tests.integration.helpers import submit
from tests.integration.stack import API_KEYS, ROOT, Stack, client_headers
from tests.ports import free_port

# Chromium reaches for Google's services at start; this machine (and CI) has no route there.
_QUIET = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
# Set to a folder (e.g. docs) to keep the screenshot of the finished page there.
SCREENSHOT_DIR = os.environ.get("JOBRELAY_SCREENSHOT_DIR")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = subprocess.run(
        [str(ROOT / "scripts" / "chromium.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, chromium_sandbox=False, args=_QUIET
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 820})
    # The stack requires an API key; the page keeps it in sessionStorage, per tab.
    context.add_init_script(f"sessionStorage.setItem('jobrelay.apiKey', {API_KEYS['default']!r})")
    opened = context.new_page()
    # The intake comes from the page's config (JOBRELAY_STATUS_INTAKE_PUBLIC_URL, stack.py).
    opened.goto(f"{stack.url('status')}/ui/")
    expect(opened.locator("body")).to_have_attribute("data-ready", "true")
    yield opened
    context.close()


def test_page_shows_the_result_without_reloading(page: Page, tmp_path: Path) -> None:
    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request))
    # The key typed under Connection is what the page sends (the stack requires one).
    page.get_by_text("Connection").click()
    page.fill("#api-key", API_KEYS["default"])
    page.get_by_role("button", name="Save").click()
    page.evaluate("window.notReloaded = true")

    page.select_option("#task", "embed")
    page.fill("#text", "A vector for this sentence, please.")
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("#result")).to_contain_text("384 dimensions", timeout=30_000)

    page.select_option("#task", "classify")
    page.fill("#text", "I love this product, it works perfectly!")
    page.get_by_role("button", name="Submit job").click()
    expect(page.get_by_test_id("label")).to_have_text("positive", timeout=30_000)

    assert page.evaluate("window.notReloaded") is True
    expect(page.locator("#steps li[data-step=final]")).to_have_class("succeeded")
    expect(page.locator("#job-meta")).to_contain_text("live events")
    # Your jobs, from the listing (GET /v1/jobs), newest first: these two lead it.
    expect(page.locator("#recent li").nth(0)).to_contain_text("I love this product")
    expect(page.locator("#recent li").nth(1)).to_contain_text("A vector for this sentence")
    submits = [r for r in sent if r.method == "POST" and r.url.endswith("/v1/jobs")]
    assert submits[-1].headers["authorization"] == f"Bearer {API_KEYS['default']}"
    shot = tmp_path / "web-page.png"
    page.screenshot(path=str(shot), full_page=True)
    if SCREENSHOT_DIR:
        shutil.copy(shot, Path(SCREENSHOT_DIR) / "web-page.png")


def test_page_lists_older_jobs_on_demand(page: Page, stack: Stack) -> None:
    # Your jobs come from GET /v1/jobs, 20 at a time; "Older jobs" follows the page's `next`.
    with httpx.Client(timeout=30, headers=client_headers()) as client:
        for n in range(21):
            body = {"task": "embed", "input": {"text": f"listed on the page {n}"}}
            assert submit(client, stack, body).status_code == 202
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#recent li")).to_have_count(20)
    page.get_by_role("button", name="Older jobs").click()
    expect(page.locator("#recent li").nth(20)).to_be_visible()
    expect(page.locator("#recent-error")).to_be_hidden()


def test_page_polls_when_the_event_stream_is_unavailable(page: Page) -> None:
    # The browser refuses the stream (a route in the browser: the server is untouched), as a
    # proxy that cannot pass streams would; the page must fall back to Retry-After polling.
    page.route("**/events", lambda route: route.abort())
    page.fill("#text", "Terrible support, I want a refund.")
    page.get_by_role("button", name="Submit job").click()
    expect(page.get_by_test_id("label")).to_have_text("negative", timeout=30_000)
    expect(page.locator("#job-meta")).to_contain_text("polling")


def test_page_shows_the_error_code_and_message(page: Page) -> None:
    page.fill("#labels", "only-one-label")
    page.fill("#text", "Some text")
    page.get_by_role("button", name="Submit job").click()
    error = page.locator("#form-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("invalid_params")
    expect(error).to_contain_text("labels")


@contextmanager
def collecting_intake() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A real HTTP server posing as an intake on another origin: it admits any browser
    origin and any header (CORS), and keeps the headers of every request it gets."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _cors(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin", "*"))
            self.send_header("Access-Control-Allow-Headers", "authorization, content-type")
            self.send_header("Access-Control-Allow-Methods", "POST")
            self.send_header("Content-Type", "application/json")
            self.end_headers()

        def do_OPTIONS(self) -> None:
            self._cors(204)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self._cors(401)
            self.wfile.write(b'{"error": {"code": "unauthorized", "message": "no"}}')

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_link_to_another_intake_never_gets_the_api_key(browser: Browser, stack: Stack) -> None:
    # Issue 17, Medium 4: ?intake= used to win over the served config and take the key along.
    context = browser.new_context()
    context.add_init_script(f"sessionStorage.setItem('jobrelay.apiKey', {API_KEYS['default']!r})")
    page = context.new_page()
    with collecting_intake() as (elsewhere, seen):
        page.goto(f"{stack.url('status')}/ui/?intake={elsewhere}")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.fill("#text", "Where does my key go?")
        page.get_by_role("button", name="Submit job").click()
        expect(page.locator("#form-error")).to_be_visible()
        assert seen, "the page did not submit to the linked intake at all"
        assert all("authorization" not in headers for headers in seen), seen
        # And the person is told why that intake answers 401.
        page.get_by_text("Connection", exact=True).click()
        expect(page.locator("#intake-untrusted")).to_be_visible()
    context.close()


def test_page_shows_a_chat_reply_as_it_streams_in(page: Page) -> None:
    # Every text the streamed paragraph shows, recorded in the page as it changes.
    page.evaluate(
        """() => {
          window.streamed = [];
          new MutationObserver(() => {
            const node = document.getElementById("streamed");
            if (node && node.textContent) window.streamed.push(node.textContent);
          }).observe(document.getElementById("result"),
            { childList: true, subtree: true, characterData: true });
        }"""
    )
    page.select_option("#task", "chat")
    page.fill("#text", "Tell a story about a lighthouse keeper and a seagull.")
    page.get_by_text("Advanced").click()
    page.fill("#params-json", '{"max_tokens": 120}')
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("#steps li[data-step=final]")).to_have_class("succeeded", timeout=60_000)
    seen: list[str] = page.evaluate("window.streamed")
    final = page.locator("#result").inner_text()
    assert len(set(seen)) >= 2, seen  # the text grew in steps before the result came
    assert all(final.startswith(text) for text in seen)  # each step the text so far
    expect(page.get_by_test_id("streamed")).to_have_count(0)  # replaced by the result
