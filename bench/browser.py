"""Headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium) for the dashboard's tests and benchmark. Not a benchmark itself."""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def spki_pin(key_pem: bytes) -> str:
    """The base64 SHA-256 of the key's SubjectPublicKeyInfo, as Chromium's pin list wants it."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def browser_available() -> bool:
    return shutil.which(CHROMIUM) is not None and shutil.which(CHROMEDRIVER) is not None


def new_browser(key_pem: bytes, work_dir: Path, width: int = 1280, height: int = 1000) -> Any:
    """Headless Chromium that accepts exactly the certificates of `key_pem`'s
    public key (Chromium keeps its trust store in NSS, which the cloud's CA
    is not in; the pin stands in for it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
        f"--ignore-certificate-errors-spki-list={spki_pin(key_pem)}",
        f"--user-data-dir={work_dir / 'profile'}",
    ):
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(work_dir), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(120)
    return driver
