"""Headless Chromium from Debian's packages, driven by Selenium (chromium-driver). Where the browser
cannot be had the tests fail and say how to get it; they never pass without it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def chromium(downloads: Path, width: int = 1280, height: int = 900):
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        pytest.fail("headless Chromium is needed: apt-get install -y chromium chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", f"--window-size={width},{height}",
                 "--allow-file-access-from-files"):  # fmt: skip
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={downloads.parent / 'chromium-profile'}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    downloads.mkdir(parents=True, exist_ok=True)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
