"""Headless Chromium for tests that look at a web UI as a user does: Debian's Chromium and
its ChromeDriver (`make browser` installs them), driven through Selenium; nothing is
downloaded at run time."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this
# closed network refuses; the rest keep a root, GPU-less, display-less machine happy.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]
WAIT_S = 60  # the UI's first load compiles a large bundle: slow on 2 busy cores


def require_browser() -> None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (`make browser` installs them)")


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager (which would download one) is never started.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def visible(driver, xpath: str):
    """The first visible element at ``xpath``, waited for."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(expected_conditions.visibility_of_element_located(("xpath", xpath)))


def with_text(text: str, contains: bool = False) -> str:
    """An XPath to the innermost element showing ``text``."""
    return f"//*[contains(text(), '{text}')]" if contains else f"//*[normalize-space(text())='{text}']"


def click(driver, xpath: str) -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_S).until(expected_conditions.element_to_be_clickable(("xpath", xpath))).click()


def loaded_image_width(driver, src_prefix: str) -> int:
    """The natural width of the first loaded <img> whose src starts with ``src_prefix``."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = (
        "return [...document.images].filter(i => i.src.startsWith(arguments[0]) && i.complete)"
        ".map(i => i.naturalWidth).find(w => w > 0) || 0"
    )
    return WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(script, src_prefix))
