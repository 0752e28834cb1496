"""Headless Chromium for the page's end-to-end test: Debian's `chromium` + `chromium-driver`,
installed with apt-get when missing (root, or password-less sudo), driven by Selenium.

`ensure_chromium()` returns the browser and driver paths, or the reason they cannot be had;
it is quick (a few `which` calls) when both are installed, so CI can call it on every run. A
Google Chrome with its chromedriver on PATH (as on GitHub's Ubuntu runners) is used as found.
"""

from __future__ import annotations

import os
import shutil
import subprocess

PACKAGES = ("chromium", "chromium-driver")


def _paths() -> tuple[str, str] | None:
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    browser = next((path for name in names if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def ensure_chromium(timeout: float = 900.0) -> tuple[str, str] | str:
    """(browser, driver) paths, installing the Debian packages first if needed; else a
    one-line reason (no apt-get, not root and no sudo, or the install failed)."""
    if found := _paths():
        return found
    if os.environ.get("ATENTO_NO_BROWSER_INSTALL"):
        return "chromium is not installed and ATENTO_NO_BROWSER_INSTALL is set"
    if not shutil.which("apt-get"):
        return "chromium is not installed and there is no apt-get to install it with"
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if not sudo or subprocess.run([sudo, "-n", "true"], capture_output=True).returncode:
            return "chromium is not installed, and installing it needs root (or sudo -n)"
        prefix = [sudo, "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        [*prefix, "apt-get", "update", "-qq"],
        [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(cmd)}` took longer than {timeout:g} s"
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
            return f"`{' '.join(cmd)}` failed ({done.returncode}): {tail[0]}"
    return _paths() or "apt-get installed chromium but chromium/chromedriver are not on PATH"


def chrome(browser: str, driver: str, *, width: int = 1300, height: int = 1000):
    """A headless Chrome WebDriver on the given binaries (no download, no network)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        f"--window-size={width},{height}", "--hide-scrollbars",
    ):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)
