"""Notebook 08 in a real browser: Voilà serves it on localhost, headless Chromium (Debian's
package, driven by Playwright) opens it, moves the K slider, presses Run, and the plot must
change with no error on the page. Saves a screenshot and the redraw times under
``outputs/08_explore/browser/``. Needs ``/usr/bin/chromium`` (``.ci/run`` installs it)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # fails loudly instead of hanging CI
playwright = pytest.importorskip("playwright.sync_api", reason="pip install '.[browser]' (Playwright for Python)")
if not Path(CHROMIUM).exists():
    pytest.skip("headless Chromium missing: apt-get install chromium (.ci/run does)", allow_module_level=True)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def voila_url(data_dir, tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "SEMLIB_DATA": str(data_dir), "MPLBACKEND": "Agg",
           "SEMLIB_CACHE": str(tmp_path_factory.mktemp("cache"))}  # cold: the redraw times are honest
    log = open(ROOT / "outputs" / "voila.log", "w") if (ROOT / "outputs").is_dir() else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "voila", "notebooks/08_explore.ipynb", "--no-browser",
                             f"--port={port}", "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def _image(page) -> str:
    return page.eval_on_selector(".widget-image", "e => e.src")


def _run_and_wait(page, before: str, timeout_s: float = 600) -> float:
    start = time.perf_counter()
    page.click("button:has-text('Run')")
    page.wait_for_function("src => { const i = document.querySelector('.widget-image');"
                           " return i && i.src !== src; }", arg=before, timeout=timeout_s * 1000)
    page.wait_for_function("() => !document.querySelector('button.jupyter-button[disabled]')", timeout=timeout_s * 1000)
    return time.perf_counter() - start


def test_k_slider_and_run_redraw_the_curves(voila_url):
    out = ROOT / "outputs" / "08_explore" / "browser"
    out.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(voila_url, timeout=600_000)
        page.wait_for_selector("text=clean MC accuracy", timeout=600_000)  # the first run is drawn
        first = _image(page)
        readout = page.locator(".widget-readout").first
        k_before = readout.inner_text()
        handle = page.locator(".noUi-handle").nth(1)  # K max
        handle.focus()
        handle.press("ArrowLeft")
        k_after = readout.inner_text()
        assert k_after != k_before, "the K slider did not move"
        uncached = _run_and_wait(page, first)
        second = _image(page)
        page.screenshot(path=str(out / "screenshot.png"), full_page=True)
        handle.press("ArrowRight")  # back to the first setting: cached, only redrawn
        cached = _run_and_wait(page, second)
        text = page.inner_text("body")
        browser.close()
    assert second != first
    assert not errors, errors
    assert "Traceback" not in text and "Error" not in text, text[-2000:]
    (out / "timings.json").write_text(json.dumps({"k_before": k_before, "k_after": k_after,
                                                  "uncached_redraw_s": round(uncached, 2),
                                                  "cached_redraw_s": round(cached, 2)}, indent=1))
    assert (out / "screenshot.png").stat().st_size > 10_000
