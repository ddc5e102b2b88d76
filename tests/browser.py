"""Headless Chromium for tests, driven over the DevTools protocol with the standard library only
(``--remote-debugging-pipe``): the static site (test_site.py) and ``kb serve`` (test_serve.py)."""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import skip_or_fail

CHROMIUM = os.environ.get("KB_TEST_CHROMIUM", "/usr/bin/chromium")


class Chromium:
    """Headless Chromium with ``--remote-debugging-pipe``: DevTools messages are JSON, each ended
    by a NUL byte, written to the browser's fd 3 and read from its fd 4."""

    TIMEOUT = 30.0

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # A small trampoline puts the pipe ends on fds 3 and 4 and execs the browser.
        trampoline = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
                      "os.execv(sys.argv[3], sys.argv[3:])")
        args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
        self.log = profile.with_suffix(".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", trampoline, str(to_browser_r), str(from_browser_w),
                                          *args], pass_fds=(to_browser_r, from_browser_w),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))
        self._messages.put(None)  # the browser closed its end

    def _take(self, deadline: float) -> dict[str, Any]:
        try:
            message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"Chromium did not answer in time; its log: {self.log}") from None
        if message is None:
            raise AssertionError(f"Chromium exited; its log: {self.log.read_text(errors='replace')[-2000:]}")
        return message

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.TIMEOUT
        while True:
            answer = self._take(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise AssertionError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def wait_for(self, method: str, session: str, since: int) -> dict[str, Any]:
        deadline = time.monotonic() + self.TIMEOUT
        while True:
            for event in self.events[since:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            self.events.append(self._take(deadline))

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        self._reader.join(timeout=5)
        os.close(self._from_browser)


class Tab:
    """One page of the browser, with the console errors, exceptions and dialogs it caused."""

    def __init__(self, browser: Chromium) -> None:
        self.browser = browser
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            browser.call(domain, self.session)

    def open(self, url: str) -> None:
        since = len(self.browser.events)
        result = self.browser.call("Page.navigate", self.session, url=url)
        assert not result.get("errorText"), f"{url}: {result['errorText']}"
        self.browser.wait_for("Page.loadEventFired", self.session, since)

    def js(self, expression: str) -> Any:
        result = self.browser.call("Runtime.evaluate", self.session, expression=expression, awaitPromise=True,
                                   returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def type_text(self, selector: str, words: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.browser.call("Input.insertText", self.session, text=words)
        self.js("new Promise(done => setTimeout(done, 300))")  # the filter is debounced

    def screenshot(self, path: Path) -> Path:
        """A PNG of the page as shown (for a person to look at)."""
        data = self.browser.call("Page.captureScreenshot", self.session, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, failed loads and dialogs (alert) of this tab."""
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif (method == "Log.entryAdded" and params["entry"].get("level") == "error"
                  # the browser's own guess at the server's /favicon.ico, not a link of the site
                  and not params["entry"].get("url", "").endswith("/favicon.ico")):
                found.append(f"log: {params['entry']}")
            elif method == "Page.javascriptDialogOpening":
                found.append(f"dialog: {params.get('message')}")
        return found


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    binary = shutil.which(CHROMIUM) or (None if "KB_TEST_CHROMIUM" in os.environ else shutil.which("chromium"))
    if binary is None:
        skip_or_fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; scripts/test.sh does)")
    chromium = Chromium(binary, tmp_path / "chromium-profile")
    try:
        yield chromium
    finally:
        chromium.close()
