"""The documentation site builds as `make docs` builds it — MyST pages, the bench tables they include, the executed
notebooks of a real run — with Sphinx warnings as errors; the slow test opens it in headless Chromium."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from collect import collect  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site of a copy of docs/ and bench/results/, with the paper-released study's executed notebooks."""
    work = tmp_path_factory.mktemp("docs")
    done = subprocess.run(
        [sys.executable, "-m", "provenance_lib", "run", "params/paper-released.yaml", "--runs-dir", str(work / "runs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.copytree(ROOT / "docs", work / "docs", ignore=shutil.ignore_patterns("_build", "executed"))
    shutil.copytree(ROOT / "bench" / "results", work / "bench" / "results")
    collect(["paper-released"], runs_dir=work / "runs", docs_dir=work / "docs")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(work / "docs"),
            str(work / "html"),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-5000:]
    return work / "html"


def test_the_site_builds_without_warnings_with_every_page_and_notebook(site):
    pages = {path.relative_to(ROOT / "docs").with_suffix(".html") for path in (ROOT / "docs").rglob("*.md")}
    assert {page for page in pages if not (site / page).is_file()} == set()
    notebooks = sorted((site / "executed" / "paper-released").glob("*.html"))
    assert [path.stem for path in notebooks] == ["03_binning", "04_contrast"]
    assert "<img" in notebooks[1].read_text(), "the executed stage 04 notebook shows no figure"


def test_a_run_without_executed_notebooks_is_refused_with_the_command(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "docs" / "collect.py"),
            "testbed",
            "--runs-dir",
            str(tmp_path),
            "--docs-dir",
            str(tmp_path / "docs"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "provenance_lib run params/testbed.yaml" in done.stderr


@pytest.mark.slow
def test_the_site_opens_in_a_browser_with_every_image_loaded(site):
    browser = pytest.importorskip("test_report_browser")
    if browser.BROWSER is None:
        pytest.skip("no chromium (make report-check installs it)")
    page = browser.Page()
    try:
        for path in (site / "index.html", site / "executed" / "paper-released" / "04_contrast.html"):
            page.open(path)
            assert page.broken_images() == [], f"{path.name}: images that did not load"
            assert page.console_errors() == [], f"{path.name}: console errors"
            assert page.screenshot(browser.SHOTS / f"docs-{path.stem}.png").stat().st_size > 10_000
        assert page.image_count() > 0, "the executed notebook page shows no figure"
    finally:
        page.close()
