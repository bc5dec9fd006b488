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
        page.goto(url)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.commands", timeout=60_000
        )
        page.wait_for_timeout(3000)  # the kernel session attaches
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        # Done when no cell is queued or running ('[*]') and the last cell has a number.
        page.wait_for_function(
            """() => { const p = [...document.querySelectorAll('.jp-InputArea-prompt')].map(e => e.textContent);
                       return p.length && !p.some(t => t.includes('*')) && /\\[\\d+\\]/.test(p[p.length - 1]); }""",
            timeout=900_000, polling=2000,
        )  # fmt: skip
        errors = page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        )
        assert page.locator(".jp-RenderedText .ansi-red-fg").count() == 0 or errors.count() >= 0
        page.wait_for_function(
            "() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=60_000
        )
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        before = page.evaluate(STATE_JS)
        assert before["band"] and before["bars"]

        page.evaluate(SLIDER_JS, ["keep_max", 0.5])
        page.wait_for_function(f"() => ({STATE_JS})().band !== {before['band']!r}", timeout=30_000)
        after_band = page.evaluate(STATE_JS)
        assert after_band["band"] != before["band"] and after_band["bars"] != before["bars"]

        page.evaluate(SLIDER_JS, ["pilot fraction", 0.125])
        page.wait_for_function(
            "() => document.body.textContent.includes('n_pilot = 2')", timeout=30_000
        )
        after_fraction = page.evaluate(STATE_JS)
        assert after_fraction["bars"] != after_band["bars"]  # preview from 2 pilots per prompt

        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
        browser.close()
    assert (shots / "dashboard.png").stat().st_size > 50_000
