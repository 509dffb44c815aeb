"""Remake the README's playground screenshots: the spiral (seven features, 2 x 8 tanh) and hr.csv, in headless
Chromium (Debian's, through Playwright for Python).

    python docs/screenshots.py                    # writes docs/playground-spiral.png and docs/playground-hr.png
    python docs/screenshots.py --data PATH/hr.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def shoot(url: str, fragment: str, until: str, path: Path, browser) -> None:
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(url + "#" + fragment)
    page.wait_for_function(until, timeout=180_000)
    page.evaluate("window.playground.pause()")
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), full_page=True)
    page.close()
    print(f"wrote {path}")


def main() -> None:
    from playwright.sync_api import sync_playwright

    from neuraltab.playground.server import start

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data" / "hr.csv")
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for data, fragment, until, name in [
            (None, "dataset=spiral&features=x1,x2,x1^2,x2^2,x1*x2,sin(x1),sin(x2)&network=8,8&seed=1&showTest=1&play=1",
             "window.playground.state().testMetric >= 0.95", "playground-spiral.png"),
            (args.data, "dataset=table&play=1", "window.playground.state().epoch >= 4", "playground-hr.png"),
        ]:
            server, thread, url = start(str(data) if data else None, "left" if data else None)
            try:
                shoot(url, fragment, until, HERE / name, browser)
            finally:
                server.should_exit = True
                thread.join(10)
        browser.close()


if __name__ == "__main__":
    main()
