"""report.html in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`) via selenium.

Every plot must have loaded with a non-zero natural size and the console must stay free of errors. A
screenshot is kept at docs/report_screenshot.png. A missing browser is a failure, not a skip: CI installs
it (`apt-get install -y chromium chromium-driver`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from audits.report import build_report
from tests.audits.test_tradeoff import fake_study

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "report_screenshot.png"
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"


def _browser() -> webdriver.Chrome:
    binary = next((shutil.which(name) for name in CHROMIUM if shutil.which(name)), None)
    driver = shutil.which(DRIVER) or (
        "/usr/lib/chromium/chromedriver" if Path("/usr/lib/chromium/chromedriver").is_file() else None
    )
    assert binary is not None and driver is not None, (
        "headless Chromium is needed for this test: apt-get install -y chromium chromium-driver"
    )
    options = Options()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,2000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    fake_study(tmp_path, audits=True)
    page = build_report(tmp_path, target_accuracy=0.8)
    browser = _browser()
    try:
        browser.get(page.resolve().as_uri())
        images = browser.execute_script(
            "return Array.from(document.images)"
            ".map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);"
        )
        assert len(images) == 4  # tradeoff, empirical, convergence, costs
        for alt, complete, width, height in images:
            assert complete and width > 0 and height > 0, f"plot {alt!r} did not load"
        assert "Privacy-utility tradeoff report" in browser.title
        assert browser.find_element("tag name", "table").is_displayed()
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1280, min(int(height) + 40, 6000))
        assert browser.save_screenshot(str(SCREENSHOT))
    finally:
        browser.quit()
    assert SCREENSHOT.stat().st_size > 10_000
