"""A headless Chromium driven over the DevTools protocol, to look at pages the way a user would.

Chromium is started with `--remote-debugging-pipe` (the protocol as NUL-separated JSON on file
descriptors 3 and 4: no port, no websocket library) and with SwiftShader for WebGL, so that 3-D
plots render on machines without a GPU. Used by `lossart view --screenshot` and by the viewer's
tests (screenshots, console errors, slider clicks and hover labels).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from lossart.errors import LossartError

#: Executable names tried in order (`LOSSART_CHROMIUM` names one explicitly).
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: Software WebGL (SwiftShader through ANGLE) and a quiet, sandbox-free headless start (root in CI).
FLAGS = (
    "--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist", "--no-first-run", "--no-default-browser-check",
    "--disable-extensions", "--disable-background-networking", "--disable-sync",
    "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe",
)  # fmt: skip


def find_chromium() -> str | None:
    """The Chromium to use: $LOSSART_CHROMIUM, else the first of CANDIDATES on PATH, else None."""
    named = os.environ.get("LOSSART_CHROMIUM")
    if named:
        return shutil.which(named) or (named if os.access(named, os.X_OK) else None)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium; `with Browser() as b: page = b.open(path)`."""

    def __init__(self, executable: str | None = None, size: tuple[int, int] = (1280, 760),
                 timeout: float = 60.0) -> None:  # fmt: skip
        self.executable = executable or find_chromium()
        if not self.executable:
            raise LossartError(
                "no Chromium found (apt-get install chromium, or set LOSSART_CHROMIUM=PATH)"
            )
        self.size = size
        self.timeout = timeout
        self._id = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        self._profile = tempfile.TemporaryDirectory(prefix="lossart-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:  # the child's fd 3 reads our commands, fd 4 carries its answers
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        w, h = self.size
        cmd = [self.executable, *FLAGS, f"--window-size={w},{h}",
               f"--user-data-dir={self._profile.name}", "about:blank"]  # fmt: skip
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            cmd, preexec_fn=wire, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self._log,
        )  # fmt: skip
        os.close(to_child_r)
        os.close(from_child_w)
        try:
            self.call("Browser.getVersion")
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._proc.poll() is None:
                try:
                    self.call("Browser.close", timeout=5)
                except Exception:
                    pass
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
        finally:
            for fd in (self._to_child, self._from_child):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()
            self._profile.cleanup()

    # ------------------------------------------------------------ the protocol

    def stderr_tail(self, chars: int = 2000) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-chars:]

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_child], [], [], max(0.0, deadline - time.time()))
            if not ready:
                raise LossartError(f"Chromium did not answer within {self.timeout:g} s")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise LossartError(f"Chromium exited: {self.stderr_tail(400).strip()}")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:  # fmt: skip
        """Send one command and wait for its answer; events that arrive meanwhile are kept."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.time() + (timeout or self.timeout)
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise LossartError(f"Chromium: {method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def open(self, target: str | os.PathLike) -> Page:
        """A new tab showing `target` (a file path or a URL), once its page has loaded."""
        url = str(target)
        if "://" not in url:
            url = Path(url).resolve().as_uri()
        tab = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": tab, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=session)
        page.resize(*self.size)
        self.call("Page.navigate", {"url": url}, session=session)
        page.wait_for("document.readyState === 'complete'")
        return page


class Page:
    """One tab: evaluate JavaScript, click, take screenshots, read console problems."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def resize(self, width: int, height: int) -> None:
        """The viewport's size in CSS pixels (a phone held upright: 412x860)."""
        self.browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=self.session,
        )

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited); page errors raise."""
        result = self.browser.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session=self.session,
        )
        if "exceptionDetails" in result:
            detail = result["exceptionDetails"]
            text = (detail.get("exception") or {}).get("description") or detail.get("text")
            raise LossartError(f"JavaScript error: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, condition: str, timeout: float | None = None) -> None:
        """Poll a JavaScript condition until it holds."""
        deadline = time.time() + (timeout or self.browser.timeout)
        while not self.evaluate(f"!!({condition})"):
            if time.time() > deadline:
                raise LossartError(f"page: timed out waiting for {condition}")
            time.sleep(0.1)

    def settle(self, frames: int = 3) -> None:
        """Wait for the page to draw: a few animation frames."""
        chain = "new Promise(r => requestAnimationFrame(r))"
        self.evaluate("(async () => { " + f"for (let i = 0; i < {frames}; i++) await {chain};" + " })()")

    def click(self, x: float, y: float) -> None:
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y)
        self.mouse("mouseReleased", x, y)

    def mouse(self, kind: str, x: float, y: float) -> None:
        params = {"type": kind, "x": x, "y": y}
        if kind != "mouseMoved":
            params.update(button="left", clickCount=1)
        self.browser.call("Input.dispatchMouseEvent", params, session=self.session)

    def screenshot(self, out: str | os.PathLike | None = None) -> bytes:
        data = base64.b64decode(
            self.browser.call("Page.captureScreenshot", {"format": "png"}, session=self.session)[
                "data"
            ]
        )
        if out is not None:
            from lossart.atomic import write_bytes

            write_bytes(out, data)
        return data

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries of this tab so far."""
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = params.get("exceptionDetails", {})
                found.append("exception: " + str((d.get("exception") or {}).get("description") or d.get("text")))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
                found.append("console.error: " + " ".join(args))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append("log: " + params["entry"].get("text", ""))
        return found
