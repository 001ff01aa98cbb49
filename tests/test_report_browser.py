"""The study report as a person sees it: headless Chromium opens the summary and every stage page offline; every image
loads and draws something (not a blank canvas with a title), every table has rows and none is cut short, no console
error is raised, and a screenshot of each page is kept. ``REPORT_RUNS``: the run folders to check, separated by
spaces (``make report-check`` checks the paper-released and the testbed run). Needs Debian's ``chromium``: ``make
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
RUNS = os.environ.get("REPORT_RUNS", "").split()  # run folders with a report
SHOTS = Path(os.environ.get("REPORT_SHOTS", "runs/screenshots"))

pytestmark = [pytest.mark.slow, pytest.mark.skipif(BROWSER is None, reason="no chromium (make report-check)")]


class Page:
    """One headless Chromium tab over the DevTools protocol."""

    def __init__(self):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.process = subprocess.Popen(
            [
                BROWSER,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                "--window-size=1280,2000",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        for _ in range(300):
            if port_file.is_file() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        from urllib.request import urlopen

        target = next(t for t in json.load(urlopen(f"http://127.0.0.1:{port}/json")) if t["type"] == "page")
        self.socket = websocket.create_connection(
            target["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )  # Chromium refuses a foreign Origin
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
            if (
                self.call("Runtime.evaluate", expression="document.readyState", returnByValue=True)["result"]["value"]
                == "complete"
            ):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{path} did not finish loading")

    def broken_images(self) -> list[str]:
        js = "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src)"
        return self.call("Runtime.evaluate", expression=js, returnByValue=True)["result"]["value"]

    def evaluate(self, js: str):
        return self.call("Runtime.evaluate", expression=js, returnByValue=True)["result"]["value"]

    def blank_images(self, least_ink: float = 0.02) -> list[str]:
        """Images whose pixels are almost all background (under ``least_ink`` of them differ from white): a figure
        with a title and no plot. Read through a canvas (every image of the report is an embedded data URI)."""
        js = f"""Array.from(document.images).filter(img => {{
            const c = document.createElement('canvas'); c.width = 300;
            c.height = Math.max(1, Math.round(300 * img.naturalHeight / img.naturalWidth));
            const g = c.getContext('2d'); g.drawImage(img, 0, 0, c.width, c.height);
            const d = g.getImageData(0, 0, c.width, c.height).data; let ink = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] < 720 && d[i + 3] > 0) ink++;
            return ink / (c.width * c.height) < {least_ink};
        }}).map(img => img.alt || img.src.slice(0, 60))"""
        return self.evaluate(js)

    def empty_tables(self) -> list[str]:
        """Tables without a single data cell (headers only, or nothing)."""
        js = """Array.from(document.querySelectorAll('table')).filter(t => !Array.from(t.querySelectorAll('td'))
            .some(td => td.textContent.trim() !== '')).map(t => (t.caption ? t.caption.textContent : '') +
            ' | ' + t.textContent.trim().slice(0, 80))"""
        return self.evaluate(js)

    def truncated_tables(self) -> list[str]:
        """Tables cut short: pandas' elided rows or columns (a row of '...'), or a 'first n of m rows' note."""
        js = """Array.from(document.querySelectorAll('table')).filter(t => Array.from(t.querySelectorAll('td, th'))
            .some(c => ['...', '…'].includes(c.textContent.trim()))).map(t => t.textContent.trim().slice(0, 80))
            .concat(Array.from(document.querySelectorAll('p, div.output_text, pre'))
            .filter(p => /(first \\d+ of \\d+ rows|\\d+ rows × \\d+ columns)/.test(p.textContent))
            .map(p => p.textContent.trim().slice(0, 80)))"""
        return self.evaluate(js)

    def image_count(self) -> int:
        return self.call("Runtime.evaluate", expression="document.images.length", returnByValue=True)["result"]["value"]

    def console_errors(self) -> list[str]:
        errors = [
            e["params"]["entry"]["text"]
            for e in self.events
            if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
        ]
        errors += [
            str(e["params"]["exceptionDetails"].get("text"))
            for e in self.events
            if e.get("method") == "Runtime.exceptionThrown"
        ]
        errors += [
            " ".join(map(str, (a.get("value") for a in e["params"]["args"])))
            for e in self.events
            if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error"
        ]
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


@pytest.fixture(params=RUNS or [None], ids=lambda run: Path(run).name if run else "no-run")
def report(request) -> Path:
    if not request.param:
        pytest.skip("set REPORT_RUNS to run folders with a report (make report-check does)")
    return Path(request.param) / "report" / "index.html"


def test_report_opens_offline_with_every_figure_drawn_every_table_whole_and_no_console_error(report):
    page = Page()
    try:
        stages = sorted(p for p in report.parent.glob("*.html") if p.name != "index.html")
        assert stages, "no stage page beside the summary"
        for path in (report, *stages):
            page.open(path)
            assert page.image_count() > 0, f"{path.name} shows no figure"
            assert page.broken_images() == [], f"{path.name}: images that did not load"
            assert page.blank_images() == [], f"{path.name}: figures with nothing drawn"
            assert page.empty_tables() == [], f"{path.name}: tables without rows"
            assert page.truncated_tables() == [], f"{path.name}: tables cut short"
            assert page.console_errors() == [], f"{path.name}: console errors"
            shot = page.screenshot(SHOTS / f"{report.parents[1].name}-{path.stem}.png")
            assert shot.stat().st_size > 10_000
    finally:
        page.close()


def test_the_checks_catch_a_blank_figure_an_empty_table_and_a_cut_table(tmp_path):
    """The detectors above fail on a page with each defect (a figure that is only a title, a table with headers and
    no rows, a table pandas elided), and pass on the same page without them."""
    import base64

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    def png(draw: bool) -> str:
        fig, ax = plt.subplots(figsize=(4, 3))
        fig.suptitle("a title")
        ax.set_axis_off()
        if draw:
            ax.imshow([[0, 1], [1, 0]], cmap="viridis")
        path = tmp_path / f"figure-{draw}.png"
        fig.savefig(path)
        plt.close(fig)
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()

    full = pd.DataFrame({"a": range(100), "b": range(100)})
    good = f'<img src="{png(True)}" alt="drawn">' + full.head(3).to_html()
    bad = (
        f'<img src="{png(False)}" alt="blank">'
        + full.head(0).to_html()
        + full.to_html(max_rows=10, show_dimensions=True)
    )
    page = Page()
    try:
        for name, body in (("good", good), ("bad", bad)):
            path = tmp_path / f"{name}.html"
            path.write_text(f"<html><body>{body}</body></html>")
            page.open(path)
            found = page.blank_images(), page.empty_tables(), page.truncated_tables()
            assert all(found) if name == "bad" else not any(found), (name, found)
    finally:
        page.close()
