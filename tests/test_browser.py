"""The studio notebook in a real browser: headless Chromium drives JupyterLab through "Run all" in smoke mode.

What a workshop does: Run all, press Stop while the render runs (it stops within a step, even though
"Run all" is still going), press Resume, see the progress reach the end and the draft video load in
the player. Screenshots are left in the test's folder (and in ``$VQCLIP_BROWSER_SHOTS`` when set).
Skipped, with the reason, where Chromium (Debian's ``chromium`` + ``chromium-driver``), selenium or
JupyterLab is missing: ``.ci/run`` installs them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--window-size=1280,4800", "--autoplay-policy=no-user-gesture-required"]
# long enough to press Stop mid-render (~5 steps/s here): 8 frames of 10 steps with the toy models at 48x32
STEPS, FRAMES = 10, 8
SMOKE_SET = f"animation.frames={FRAMES};generation.iterations_per_frame={STEPS};generation.iterations_first_frame={STEPS}"


def _missing() -> str | None:
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        return "no Chromium: install Debian's chromium and chromium-driver (.ci/run does when it can)"
    for module in ("selenium", "jupyterlab", "jupyter_ui_poll"):
        try:
            __import__(module)
        except ModuleNotFoundError:
            return f"{module} is not installed: pip install -e '.[browser,test]'"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 over a folder holding the studio notebook; yields its URL."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "studio.ipynb", work / "studio.ipynb")
    kernels = tmp_path / "jupyter" / "kernels" / "python3"  # the notebook's kernel name, this interpreter
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}), encoding="utf-8")
    port, token = _free_port(), "vqclip-browser-test"
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "jupyter"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "VQCLIP_SMOKE": "1", "VQCLIP_SMOKE_SET": SMOKE_SET, "VQCLIP_OUT": str(tmp_path / "out")}
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
                               "--LabApp.expose_app_in_browser=True", "--allow-root"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("JupyterLab did not start: " + (tmp_path / "jupyterlab.log").read_text()[-2000:])
        yield f"http://127.0.0.1:{port}/lab/tree/studio.ipynb?token={token}", tmp_path
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(what: str, probe, ok, timeout: float, shoot):
    """Poll ``probe()`` until ``ok(value)``; on timeout, a screenshot and the last value in the failure."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if value and ok(value):
            return value
        time.sleep(0.2)
    shoot(f"timeout-{re.sub(r'[^a-z]+', '-', what.lower())}")
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {value}")


# the production panel is the one with a Stop button; its status line is the HTML right under the progress bar
PANEL_JS = """
const stop = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Stop');
if (!stop) return null;
const panel = stop.closest('.widget-vbox');
const resume = [...panel.querySelectorAll('button')].find(b => b.textContent.trim() === 'Resume');
const bar = panel.querySelector('.progress-bar, .widget-progress .progress-bar');
const video = panel.querySelector('video');
return {stop_disabled: stop.disabled, resume_disabled: resume ? resume.disabled : null,
        progress: bar ? parseFloat(bar.style.width || bar.style.height || '0') : null,
        text: panel.innerText, video_ready: video ? video.readyState : null,
        video_error: video && video.error ? video.error.code : null};
"""


@pytest.mark.slow
def test_studio_run_all_stop_resume_and_play_in_a_real_browser(lab, browser):
    url, tmp_path = lab
    shots = [tmp_path / "shots"] + ([Path(os.environ["VQCLIP_BROWSER_SHOTS"])] if os.environ.get("VQCLIP_BROWSER_SHOTS") else [])

    def shoot(name: str) -> None:
        for folder in shots:
            folder.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(folder / f"{name}.png"))

    browser.set_script_timeout(30)
    browser.get(url)
    _wait("the notebook and its kernel", lambda: browser.execute_script(
        "const a = window.jupyterapp; const w = a && a.shell.currentWidget;"
        "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle')"), bool, 60, shoot)
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    # 1. The panels render as widgets (not as text reprs) and the render starts in "Run all".
    panel = lambda: browser.execute_script(PANEL_JS)  # noqa: E731
    _wait("the render to reach frame 2", panel, lambda s: not s["stop_disabled"] and "frame 2/" in s["text"], 90, shoot)
    assert browser.find_elements("css selector", ".jupyter-widgets .widget-dropdown, .jupyter-widgets select")
    assert "VBox(" not in browser.find_element("css selector", "body").text  # no widget shown as its repr
    shoot("1-rendering")

    # 2. Stop while "Run all" is still going: the click is handled at once and the render stops within a step.
    stop = [b for b in browser.find_elements("css selector", "button") if b.text.strip() == "Stop"][0]
    stop.click()
    state = _wait("the render to stop", panel, lambda s: "stopped (" in s["text"], 30, shoot)
    shoot("2-stopped")
    lag = int(re.search(r"stopped \((\d+) steps? after Stop\)", state["text"])[1])
    assert lag <= 1, state["text"]  # the step running when the click arrived, no more
    frames = sorted((tmp_path / "out" / "renders").glob("*/frames/*.png"))
    assert 0 < len(frames) < FRAMES and (frames[0].parents[1] / "resume.pt").is_file()

    # 3. Resume: the progress reaches the end and the draft video loads in the player.
    _wait("Run all to finish (the post panel exports)", lambda: browser.find_element("css selector", "body").text,
          lambda text: "wrote " in text, 90, shoot)
    resume = [b for b in browser.find_elements("css selector", "button") if b.text.strip() == "Resume"][0]
    resume.click()
    state = _wait("the video to load", panel, lambda s: (s["video_ready"] or 0) >= 1, 120, shoot)
    shoot("3-done")
    assert state["progress"] == pytest.approx(100.0) and f"done: {FRAMES} frames" in state["text"], state
    assert state["video_error"] is None
