"""The study report as a person sees it: headless Chromium opens the summary and one stage page offline, every image
loads, no console error is raised, and a screenshot of each is kept. Needs Debian's ``chromium``: ``make
report-check`` installs it when missing and runs this file; without a browser the test is skipped, never passed.

Driven over the DevTools protocol (websocket-client, already a dependency) rather than a browser-automation
package: four protocol calls are all this check needs."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
RUN = os.environ.get("REPORT_RUN")   # a run folder with a report
SHOTS = Path(os.environ.get("REPORT_SHOTS", "runs/screenshots"))

pytestmark = [pytest.mark.slow, pytest.mark.skipif(BROWSER is None, reason="no chromium (make report-check)")]


class Page:
    """One headless Chromium tab over the DevTools protocol."""

    def __init__(self):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.process = subprocess.Popen(
            [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "--window-size=1280,2000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        for _ in range(300):
            if port_file.is_file() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        from urllib.request import urlopen

        target = next(t for t in json.load(urlopen(f"http://127.0.0.1:{port}/json")) if t["type"] == "page")
        self.socket = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=60)
        self.counter, self.events = 0, []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params) -> dict:
        self.counter += 1
        self.socket.send(json.dumps({"id": self.counter, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.counter:
                return message.get("result", {})
            self.events.append(message)

    def open(self, path: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        for _ in range(600):
            if self.call("Runtime.evaluate", expression="document.readyState",
                         returnByValue=True)["result"]["value"] == "complete":
                return
            time.sleep(0.1)
        raise TimeoutError(f"{path} did not finish loading")

    def broken_images(self) -> list[str]:
        js = "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src)"
        return self.call("Runtime.evaluate", expression=js, returnByValue=True)["result"]["value"]

    def image_count(self) -> int:
        return self.call("Runtime.evaluate", expression="document.images.length", returnByValue=True)["result"][
            "value"]

    def console_errors(self) -> list[str]:
        errors = [e["params"]["entry"]["text"] for e in self.events
                  if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"]
        errors += [str(e["params"]["exceptionDetails"].get("text")) for e in self.events
                   if e.get("method") == "Runtime.exceptionThrown"]
        errors += [" ".join(map(str, (a.get("value") for a in e["params"]["args"]))) for e in self.events
                   if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error"]
        return errors

    def screenshot(self, path: Path) -> Path:
        import base64

        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def report() -> Path:
    if not RUN:
        pytest.skip("set REPORT_RUN to a run folder with a report (make report-check does)")
    return Path(RUN) / "report" / "index.html"


def test_report_opens_offline_with_every_image_loaded_and_no_console_error(report):
    page = Page()
    try:
        stage = sorted(p for p in report.parent.glob("*.html") if p.name != "index.html")[0]
        for path in (report, stage):
            page.open(path)
            assert page.image_count() > 0, f"{path.name} shows no figure"
            assert page.broken_images() == [], f"{path.name}: images that did not load"
            assert page.console_errors() == [], f"{path.name}: console errors"
            shot = page.screenshot(SHOTS / f"{report.parents[1].name}-{path.stem}.png")
            assert shot.stat().st_size > 10_000
    finally:
        page.close()
