"""Local servers and headless Chromium for the browser and Binder tests: a free loopback port,
waiting for a server to listen (failing loudly if it exits), stopping it for sure, and a page
that collects the JavaScript errors it raises."""
import shutil
import socket
import subprocess
import time

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, tries: int = 600) -> None:
    """Until ``port`` accepts connections (about ``tries`` x 0.2 s); ``what`` names the server if
    its process exits first."""
    for _ in range(tries):
        assert proc.poll() is None, f"{what} exited at start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    """Terminate, and kill if it ignores that: no server outlives its test."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def open_page(p, height: int = 900):
    """(browser, page, errors): headless Chromium with one page whose uncaught errors go to ``errors``."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
    page = browser.new_page(viewport={"width": 1400, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return browser, page, errors
