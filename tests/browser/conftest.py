"""One switchhook, one receiver and one Chromium per module (issue 15: the browser suite stays fast)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.harness import World, launch, require_browser, world


@pytest.fixture(scope="module")
def console_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_browser()
    with world(tmp_path_factory.mktemp("console")) as w:
        yield w


@pytest.fixture(scope="module")
def browser(console_world: World) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
