"""Speed of the app as a user meets it: `python -m biglearn.app.bench [--checkpoints DIR] [--repeats N]`.

Starts `python app.py` on a free port and measures
  - time to first page: from starting the process until GET / answers 200;
  - click-to-completion round trip: a click on the patch grid in headless Chromium until the status line names
    that patch and the new completion panel has loaded (needs /usr/bin/chromium and playwright; skipped
    otherwise), and the same work through the /complete API endpoint with gradio_client (upload included);
  - a 10-column S-ratio sweep through the /sweep endpoint.
Prints one JSON object (medians in milliseconds). Uses the checkpoints the app finds (shipped first).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(env: dict) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    env = {**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            raise SystemExit("app.py exited before serving a page")
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return process, url, time.perf_counter() - start
        except OSError:
            time.sleep(0.05)


def browser_clicks(url: str, repeats: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        page.wait_for_function("() => (document.querySelector('#status')?.innerText || '').includes('Kept')",
                               timeout=60_000)
        page.wait_for_function("() => document.querySelector('#grid img')?.naturalWidth > 0")
        kept, generated = map(int, re.search(r"Kept (\d+) patches.*generated (\d+)",
                                             page.inner_text("#status")).groups())
        grid = round((kept + generated) ** 0.5)
        left, top, width = page.evaluate("""() => { const r = document.querySelector('#grid img')
            .getBoundingClientRect(); return [r.x, r.y, r.width]; }""")
        loaded = "s => { const i = document.querySelector(s + ' img'); return i && i.complete && i.naturalWidth > 0 }"
        for k in range(repeats + 2):  # two warm-up clicks
            row, col = k // grid % grid, k % grid
            page.wait_for_function(loaded, arg="#grid")
            old_panel = page.get_attribute("#panel-2 img", "src")
            start = time.perf_counter()
            page.mouse.click(left + width * (col + 0.5) / grid, top + width * (row + 0.5) / grid)
            # done when the status names this patch and the new completion panel has loaded
            page.wait_for_function("""([p, old]) => { const box = document.querySelector('#status');
                const img = document.querySelector('#panel-2 img');
                return !box.querySelector('[data-testid=status-tracker]:not(.hide)') && box.innerText.includes(p)
                    && img.src !== old && img.complete && img.naturalWidth > 0; }""",
                                   arg=[f"Patch ({row}, {col}) is now", old_panel])
            if k >= 2:
                times.append(time.perf_counter() - start)
        browser.close()
    return times


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", help="sets $BIGLEARN_CHECKPOINTS for the app (shipped ones still win)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    from gradio_client import Client, handle_file

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    if args.checkpoints:
        env["BIGLEARN_CHECKPOINTS"] = str(Path(args.checkpoints).resolve())
    with tempfile.TemporaryDirectory() as gradio_tmp:
        env["GRADIO_TEMP_DIR"] = gradio_tmp
        process, url, first_page = start_app(env)
        try:
            client = Client(url, verbose=False)
            image = handle_file(str(ROOT / "examples" / "drawn" / "drawn-sunset-300x200.png"))
            result = {"first_page_s": round(first_page, 2)}
            from biglearn.app.models import find_checkpoint
            os.environ.update({k: v for k, v in env.items() if k == "BIGLEARN_CHECKPOINTS"})
            result["faces_checkpoint"] = str(find_checkpoint("faces"))
            if CHROMIUM.exists():
                result["click_roundtrip_browser_ms"] = ms(browser_clicks(url, args.repeats))
            result["complete_api_ms"] = ms(timed(lambda: client.predict(
                image, "faces", "", 0.5, "random", 0, api_name="/complete"), args.repeats))
            result["sweep_api_ms"] = ms(timed(lambda: client.predict(
                image, "faces", "random", 0, api_name="/sweep"), max(3, args.repeats // 2)))
        finally:
            process.terminate()
            process.wait(10)
    print(json.dumps(result, indent=2))
    return 0


def ms(times: list[float]) -> dict:
    return {"median": round(1000 * statistics.median(times)), "min": round(1000 * min(times)),
            "max": round(1000 * max(times)), "n": len(times)}


if __name__ == "__main__":
    sys.exit(main())
