"""Headless Chromium for the end-to-end tests: the system's ``chromium`` (installed by ``.ci/run``) via Playwright.

A test module calls ``require_chromium("inbox")`` at import: without Chromium the module is skipped locally
and fails in CI (``CI`` set), so a CI machine that lost its browser cannot pass silently. The ``browser``
fixture (module scope) lives in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu"]


def require_chromium(what: str):
    """Skip (or in CI fail) the calling module without Chromium; return ``playwright.sync_api``."""
    if not CHROMIUM:
        if os.environ.get("CI"):
            raise RuntimeError(f"the {what} end-to-end tests need /usr/bin/chromium (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api")
