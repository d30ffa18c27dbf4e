"""Binder as far as it can be tested here: a fresh clone, a fresh virtual environment,
``pip install -r binder/requirements.txt``, ``binder/postBuild`` fetching CIFAR-10 through
semlib's online path (a stand-in archive from a loopback server: nothing leaves 127.0.0.1) and
building the smoke zoo, then ``binder/start`` wrapping JupyterLab, opened in headless Chromium.

The fresh environment sees this environment's packages through a ``.pth`` line (no network:
``pip --no-index``), so what is tested is Binder's sequence and scripts, not the registry."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from servers import CHROMIUM, free_port, open_page, stop, wait_for_port
from test_data_fetch import archive, server  # noqa: F401  (fixtures: the stand-in archive on loopback)

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]



def test_binder_builds_from_a_fresh_clone_and_serves_jupyterlab(server, tmp_path):  # noqa: F811
    url, hits, sha = server
    repo, venv = tmp_path / "repo", tmp_path / "venv"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # pip and setuptools: the .pth
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("SEMLIB_DATA", "VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", SEMLIB_CIFAR10_URL=f"{url}/cifar-10-python.tar.gz",
               SEMLIB_CIFAR10_SHA256=sha, SEMLIB_DATA_VERIFY="0", MPLBACKEND="Agg",
               SEMLIB_CACHE=str(tmp_path / "cache"), JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"))
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
                          "--no-build-isolation", "-r", "binder/requirements.txt"], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-3000:]
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import semlib; print(semlib.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(repo)), f"the fresh environment imports semlib from {where}, not the clone"
    build = subprocess.run(["binder/postBuild"], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    assert len(hits) == 1 and sorted(p.name for p in (repo / "data").glob("*.npz"))  # fetched once, converted
    assert (repo / "outputs" / "01_zoo" / "smoke" / "metrics.json").is_file() and any((repo / "zoo" / "smoke").glob(
        "*.safetensors"))
    port = free_port()
    lab = subprocess.Popen(["binder/start", "python", "-m", "jupyterlab", "--no-browser", f"--port={port}",
                            "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
                            "--ServerApp.allow_root=True"], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, lab, "binder/start's JupyterLab")
        playwright = pytest.importorskip("playwright.sync_api")
        if not Path(CHROMIUM).exists():
            pytest.skip("headless Chromium missing: apt-get install chromium (.ci/run does)")
        with playwright.sync_playwright() as p:
            browser, page, errors = open_page(p)
            page.goto(f"http://127.0.0.1:{port}/lab/tree/notebooks", timeout=300_000)
            page.wait_for_selector(".jp-DirListing-item:has-text('08_explore.ipynb')", timeout=300_000)
            names = page.eval_on_selector_all(".jp-DirListing-itemName", "es => es.map(e => e.innerText)")
            browser.close()
        assert not errors, errors
        assert {f"0{i}" for i in range(9)} <= {n[:2] for n in names}, names
    finally:
        stop(lab)
