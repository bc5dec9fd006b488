"""JupyterLab in a real browser: run 01_step_through, move sliders, watch the plots change.

JupyterLab is started on localhost by the test; Debian's Chromium (/usr/bin/chromium) is driven
by Playwright, headless, with no browser download. `.ci/run` installs Chromium and sets
PCBENCH_REQUIRE_BROWSER=1, so there a missing browser fails instead of skipping.
"""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SLIDER_JS = """([label, value]) => {
  const box = [...document.querySelectorAll('.widget-slider')].find(
      s => s.querySelector('.widget-label')?.textContent.trim() === label);
  const readout = box.querySelector('.widget-readout');
  readout.focus(); readout.textContent = String(value);
  readout.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', keyCode: 13, bubbles: true}));
  readout.blur();
}"""
STATE_JS = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const d = (el, sel) => [...el.querySelectorAll(sel)].map(p => p.getAttribute('d')).join('|');
  return {plots: plots.length,
          band: plots.length ? d(plots[0], '.shapelayer path') : '',
          bars: plots.length > 1 ? d(plots[1], '.barlayer path') : '',
          summary: [...document.querySelectorAll('.widget-html-content')].map(e => e.textContent).join(' ')};
}"""


def _wait_for_change(page, before: dict, keys: tuple[str, ...], timeout_s: float = 60) -> dict:
    """The dashboard's DOM state once every key differs from `before` (or the last seen)."""
    deadline = time.time() + timeout_s
    while True:
        now = page.evaluate(STATE_JS)
        if all(now[k] != before[k] for k in keys) or time.time() > deadline:
            return now
        page.wait_for_timeout(250)


def _wait_until_drawn(page, shots: Path, console: list[str], timeout_s: float = 120) -> dict:
    """The dashboard's DOM state once plotly has drawn the band (plot 0) and the bars (plot 1).

    JupyterLab 4 skips layout of off-screen cells (windowing mode 'contentVisibility'), so a
    figure that was off screen when run-all finished may not be drawn yet: scroll both into view.
    A figure still blank at the deadline fails with what plotly drew, the console and a screenshot.
    """
    deadline = time.time() + timeout_s
    while True:
        for i in (0, 1):
            page.locator(".js-plotly-plot").nth(i).scroll_into_view_if_needed()
        state = page.evaluate(STATE_JS)
        if state["band"] and state["bars"]:
            return state
        if time.time() > deadline:
            page.screenshot(path=str(shots / "not_drawn.png"), full_page=True)
            drawn = page.evaluate(
                "() => [...document.querySelectorAll('.js-plotly-plot')].map(g => "
                "({traces: (g.data || []).length, title: g.layout?.title?.text ?? null, "
                "width: g.offsetWidth, full: (g._fullData || []).length}))"
            )
            errors = "\n".join(m for m in console if not m.startswith(("log:", "debug:", "info:")))
            pytest.fail(f"plotly never drew the band and the bars: {state}\n{drawn}\n{errors}")
        page.wait_for_timeout(1000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    if not CHROMIUM.exists():
        if os.environ.get("PCBENCH_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} not found (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed")
    # A copy of the notebook inside the repository (so it finds the repo root), never the
    # committed file: JupyterLab would save outputs into it.
    work = ROOT / "notebooks" / "_browser_test"
    work.mkdir(exist_ok=True)
    nb = nbformat.read(ROOT / "notebooks" / "01_step_through.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source += "\ndashboard_steps = 1"
    nbformat.write(nb, work / "01_step_through.ipynb")
    port, token = _free_port(), secrets.token_hex(8)
    env = os.environ | {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={ROOT}", "--allow-root",
         "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=open(tmp_path / "lab.log", "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    yield base, token, work
    proc.terminate()
    proc.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)


def test_dashboard_in_jupyterlab_reacts_to_sliders(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token, work = lab
    shots = Path(os.environ.get("PCBENCH_NOTEBOOK_OUT", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    url = f"{base}/lab/tree/notebooks/_browser_test/01_step_through.ipynb?token={token}&reset"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        console: list[str] = []  # browser-side errors, reported if the figures stay blank
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"[:500]))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"[:500]))
        page.goto(url)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.commands", timeout=60_000
        )
        page.wait_for_timeout(3000)  # the kernel session attaches
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        # Done when no cell is queued or running ('[*]') and the last cell has a number, or a
        # cell raised (run-all stops there: the cells after it never get a number).
        page.wait_for_function(
            """() => { const p = [...document.querySelectorAll('.jp-InputArea-prompt')].map(e => e.textContent);
                       const raised = [...document.querySelectorAll('.jp-OutputArea-output')]
                           .some(e => e.textContent.includes('Traceback'));
                       return p.length && !p.some(t => t.includes('*'))
                           && (raised || /\\[\\d+\\]/.test(p[p.length - 1])); }""",
            timeout=900_000, polling=2000,
        )  # fmt: skip
        outputs = " ".join(page.locator(".jp-OutputArea-output").all_inner_texts())
        assert "Traceback" not in outputs  # every cell ran without an exception
        page.wait_for_function(
            "() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=60_000
        )
        before = _wait_until_drawn(page, shots, console)

        # Plotly may redraw the band and the bars in separate frames: wait for both to change.
        page.evaluate(SLIDER_JS, ["keep_max", 0.5])
        after_band = _wait_for_change(page, before, ("band", "bars"))
        assert after_band["band"] != before["band"] and after_band["bars"] != before["bars"]

        page.evaluate(SLIDER_JS, ["pilot fraction", 0.125])
        after_fraction = _wait_for_change(page, after_band, ("bars",))
        assert "n_pilot = 2" in after_fraction["summary"]  # preview from 2 pilots per prompt
        assert after_fraction["bars"] != after_band["bars"]

        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
        browser.close()
    assert (shots / "dashboard.png").stat().st_size > 50_000
