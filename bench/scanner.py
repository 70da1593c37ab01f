"""Benchmark: scan-to-answer time of the browser scanner (/scanner) in Chromium against a local service.

Run by hand: ``.venv/bin/python bench/scanner.py [--rounds N] [--scans N]``
(needs Playwright and /usr/bin/chromium). The service runs in this process on
a loopback port (werkzeug's threaded server, SQLite, rate limits off), the
page at 360x640; in each round, interleaved:

  (f) the floor: the page's own ``fetch`` of ``POST /api/v1/verify`` with the
      scanner's key, a fresh code each time, until the JSON is read
  (w) a keyboard-wedge scan: from the reader's Enter (a keydown listener
      notes the time) to the answer painted (the answer shown, then two
      animation frames)
  (d) the camera's decoder alone: jsQR on one 640x480 frame of a code (the
      page's fallback where BarcodeDetector is absent, as in Chromium on Linux)

Prints milliseconds (median per round; the range over rounds) and (w)/(f).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "tests"))

from helpers import (  # noqa: E402 - the tests' helpers, found above
    CHROMIUM,
    CHROMIUM_ARGS,
    PHONE,
    add_scanner,
    new_keys_dir,
    served_app,
    service_code,
)

from codeservice.qr import module_matrix  # noqa: E402

TIMED_SCAN = """
async (code) => {
  const answer = document.getElementById('answer');
  const next = document.getElementById('answer-next');
  if (!answer.hidden) next.click();
  const painted = new Promise(resolve => {
    const watch = new MutationObserver(() => {
      if (answer.hidden) return;
      watch.disconnect();
      requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now())));
    });
    watch.observe(answer, {attributes: true, attributeFilter: ['hidden']});
  });
  let entered = 0;
  document.addEventListener('keydown', e => { if (e.key === 'Enter') entered = performance.now(); },
                            {capture: true, once: true});
  window.__painted = painted.then(t => t - entered);
  return true;
}
"""

TIMED_FETCH = """
async ([code, key]) => {
  const start = performance.now();
  const response = await fetch('/api/v1/verify', {method: 'POST',
    headers: {'Content-Type': 'application/json', 'Authorization': 'Bearer ' + key},
    body: JSON.stringify({token: code, scene: 'venue', context: {}})});
  const body = await response.json();
  if (!body.ok) throw new Error(body.code);
  return performance.now() - start;
}
"""

TIMED_DECODE = """
([width, height, luma]) => {
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = luma[i]; rgba[4 * i + 3] = 255;
  }
  const start = performance.now();
  const found = jsQR(rgba, width, height, {inversionAttempts: 'dontInvert'});
  const elapsed = performance.now() - start;
  if (!found) throw new Error('not decoded');
  return elapsed;
}
"""


def frame(text: str, width: int = 640, height: int = 480) -> list[int]:
    modules = module_matrix(text)
    count = len(modules) + 8
    pixel = min(width, height) * 9 // 10 // count
    left, top = (width - count * pixel) // 2, (height - count * pixel) // 2
    luma = [235] * (width * height)
    for y, row in enumerate(modules):
        for x, dark in enumerate(row):
            if dark:
                for line in range(top + (y + 4) * pixel, top + (y + 5) * pixel):
                    start = line * width + left + (x + 4) * pixel
                    luma[start : start + pixel] = [16] * pixel
    return luma


def main() -> None:
    import logging

    from playwright.sync_api import sync_playwright

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scans", type=int, default=30)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-scanner-"))
    keys_dir = new_keys_dir(tmp / "keys")
    config = {"DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}", "KEYS_DIR": str(keys_dir),
              "ENV": "development", "RATE_LIMITS": "off", "LOG_LEVEL": "WARNING"}
    samples: dict[str, list[float]] = {"f": [], "w": [], "d": []}
    with served_app(config) as server, sync_playwright() as playwright:
        app: Any = server["app"]
        key = add_scanner(app.test_cli_runner(), venue="museum", device="door-1", scenes="venue")[1]
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=PHONE, base_url=server["url"], locale="en-US").new_page()
        page.goto("/scanner")
        page.fill("#scanner-key", key)
        page.click("button[type=submit]")
        page.select_option("#scene", "venue")
        page.click("#scene-form button[type=submit]")
        page.wait_for_selector("#scan-view:not([hidden])")
        luma = frame(service_code(app, keys_dir))
        for _ in range(args.rounds):
            fetches, wedges, decodes = [], [], []
            for _ in range(args.scans):
                fetches.append(page.evaluate(TIMED_FETCH, [service_code(app, keys_dir), key]))
                code = service_code(app, keys_dir)
                page.evaluate(TIMED_SCAN, code)
                page.focus("#wedge")
                page.keyboard.insert_text(code)  # the reader's characters, then its Enter (timed)
                page.keyboard.press("Enter")
                wedges.append(page.evaluate("window.__painted"))
                if page.locator(".answer-headline").inner_text() != "Accepted":
                    raise SystemExit("a valid code was refused: the benchmark is broken")
            for _ in range(5):
                decodes.append(page.evaluate(TIMED_DECODE, [640, 480, luma]))
            samples["f"].append(statistics.median(fetches))
            samples["w"].append(statistics.median(wedges))
            samples["d"].append(statistics.median(decodes))
            time.sleep(0.1)
        browser.close()

    floor = statistics.median(samples["f"])
    labels = {
        "f": "fetch POST /api/v1/verify from the page (floor)",
        "w": "wedge Enter -> answer painted",
        "d": "jsQR decode of one 640x480 camera frame",
    }
    print(f"{args.rounds} rounds x {args.scans} scans, interleaved; median of round medians (range)")
    for name, label in labels.items():
        values = samples[name]
        median = statistics.median(values)
        print(f"({name}) {label:48s} {median:7.1f} ms ({min(values):.1f}-{max(values):.1f})  "
              f"{median / floor:5.2f}x (f)")


if __name__ == "__main__":
    main()
