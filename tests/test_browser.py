"""Notebook 08 in a real browser: Voilà serves it on localhost, headless Chromium (Debian's
package, driven by Playwright) opens it, moves the K slider, presses Run, and the plot must
change with no error on the page. Saves screenshots and the redraw times under
``outputs/08_explore/browser/<preset>/``. Needs ``/usr/bin/chromium`` (``.ci/run`` installs it).

By default (CI) the notebook runs with its own interactive-sized defaults on a cold cache
(``smoke``, ignored by git). ``SEMLIB_BROWSER_PRESET=laptop`` serves it with the laptop preset's
parameters on the project's cache and committed outputs, as a user of the laptop run sees it
(the grid's 100 images): those screenshots are the committed ones."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from papermill.iorw import load_notebook_node, write_ipynb
from papermill.parameterize import parameterize_notebook

from servers import CHROMIUM, free_port, open_page, stop, wait_for_port

from semlib.outputs import STAGING_ENV, STAGING_FOR_ENV
from semlib.params import load_params

ROOT = Path(__file__).resolve().parent.parent
PRESET = os.environ.get("SEMLIB_BROWSER_PRESET", "smoke")
OUT = ROOT / "outputs" / "08_explore" / "browser" / PRESET
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # fails loudly instead of hanging CI
playwright = pytest.importorskip("playwright.sync_api", reason="pip install '.[browser]' (Playwright for Python)")
if not Path(CHROMIUM).exists():
    pytest.skip("headless Chromium missing: apt-get install chromium (.ci/run does)", allow_module_level=True)


def _notebook(folder: Path) -> Path:
    """Notebook 08 copied into ``folder`` (inside the project, so the kernel finds it): as it is
    for ``smoke``, with the preset's parameters injected (as the pipeline does) otherwise."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    src, dst = ROOT / "notebooks" / "08_explore.ipynb", folder / "08_explore.ipynb"
    if PRESET == "smoke":
        shutil.copy(src, dst)
    else:
        params = {**load_params("08_explore", PRESET, ROOT), "PRESET": PRESET}
        write_ipynb(parameterize_notebook(load_notebook_node(str(src)), params), str(dst))
    return dst


def _env(tmp_path_factory, name: str) -> dict:
    """A cold cache for the default run (its redraw times are honest). A preset's run uses the
    project's cache and reads its grid from the committed outputs, and writes its own outputs
    into a scratch folder (as a pipeline run stages them), never over the committed ones."""
    if PRESET == "smoke":
        return {"SEMLIB_CACHE": str(tmp_path_factory.mktemp(name))}
    return {STAGING_ENV: str(tmp_path_factory.mktemp(name)), STAGING_FOR_ENV: f"08_explore/{PRESET}"}


@pytest.fixture(scope="module")
def voila_url(data_dir, tmp_path_factory):
    port = free_port()
    notebook = _notebook(ROOT / "cache" / "voila")
    env = {**os.environ, "SEMLIB_DATA": str(data_dir), "MPLBACKEND": "Agg", **_env(tmp_path_factory, "voila_env")}
    log = open(ROOT / "outputs" / "voila.log", "w") if (ROOT / "outputs").is_dir() else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "voila", str(notebook.relative_to(ROOT)), "--no-browser",
                             f"--port={port}", "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, proc, "voila (see outputs/voila.log)", tries=300)
    yield f"http://127.0.0.1:{port}/"
    stop(proc)
    shutil.rmtree(notebook.parent, ignore_errors=True)


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
    out = OUT
    out.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser, page, errors = open_page(p, 900)
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
    (out / "timings.json").write_text(json.dumps({"preset": PRESET, "k_before": k_before, "k_after": k_after,
                                                  "uncached_redraw_s": round(uncached, 2),
                                                  "cached_redraw_s": round(cached, 2)}, indent=1))
    assert (out / "screenshot.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def lab_url(data_dir, tmp_path_factory):
    """JupyterLab on loopback over a copy of notebook 08 (running it in Lab must not rewrite the
    repository's notebook) in the ignored ``cache/`` (inside the project, so the kernel finds
    it), with its own settings, workspace and runtime folders."""
    root, home = _notebook(ROOT / "cache" / "jupyterlab").parent, tmp_path_factory.mktemp("lab_home")
    port = free_port()
    env = {**os.environ, "SEMLIB_DATA": str(data_dir), **_env(tmp_path_factory, "lab_env"),
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings")}
    log = open(ROOT / "outputs" / "jupyterlab.log", "w") if (ROOT / "outputs").is_dir() else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                             "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
                             "--ServerApp.allow_root=True",
                             "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, proc, "jupyter lab (see outputs/jupyterlab.log)")
    yield f"http://127.0.0.1:{port}/lab/tree/08_explore.ipynb"
    stop(proc)
    shutil.rmtree(root, ignore_errors=True)


def test_notebook_08_runs_in_jupyterlab_and_its_slider_redraws(lab_url):
    """The notebook as users open it: JupyterLab's own front end and widget manager; Run All,
    then the K slider moved and Run pressed must change the plot, with no error on the page."""
    out = OUT
    out.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser, page, errors = open_page(p, 1000)
        page.goto(lab_url, timeout=600_000)
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=300_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=300_000)
        page.click(".jp-NotebookPanel .jp-Cell .jp-InputArea-editor >> nth=1")  # the notebook has the focus
        page.keyboard.press("Escape")
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
        page.wait_for_function("() => { const i = document.querySelector('.jp-NotebookPanel .widget-image');"
                               " return i && i.src; }", timeout=600_000)
        page.wait_for_function("() => !document.querySelector('.jp-NotebookPanel button.jupyter-button[disabled]')",
                               timeout=600_000)
        first = page.eval_on_selector(".jp-NotebookPanel .widget-image", "e => e.src")
        readout = page.locator(".jp-NotebookPanel .widget-readout").first
        k_before = readout.inner_text()
        handle = page.locator(".jp-NotebookPanel .noUi-handle").nth(1)  # K max
        handle.focus()
        handle.press("ArrowLeft")
        assert readout.inner_text() != k_before, "the K slider did not move"
        start = time.perf_counter()
        page.click(".jp-NotebookPanel button:has-text('Run')")
        page.wait_for_function("src => { const i = document.querySelector('.jp-NotebookPanel .widget-image');"
                               " return i && i.src !== src; }", arg=first, timeout=600_000)
        redraw = time.perf_counter() - start
        page.wait_for_function("() => !document.querySelector('.jp-NotebookPanel button.jupyter-button[disabled]')",
                               timeout=600_000)
        news = page.locator(".jp-toast-button:has-text('No')")  # Lab's news question, not part of the notebook
        if news.count():
            news.first.click()
        page.screenshot(path=str(out / "jupyterlab.png"), full_page=True)
        text = page.inner_text(".jp-NotebookPanel")
        browser.close()
    assert not errors, errors
    assert "Traceback" not in text, text[-2000:]
    timings = json.loads((out / "timings.json").read_text()) if (out / "timings.json").is_file() else {}
    (out / "timings.json").write_text(json.dumps({**timings, "jupyterlab_redraw_s": round(redraw, 2)}, indent=1))
    assert (out / "jupyterlab.png").stat().st_size > 10_000
