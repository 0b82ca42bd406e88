"""Every setting is documented where operators look: the README's table and .env.example."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchhook.config import Settings

ROOT = Path(__file__).resolve().parents[2]
VARIABLES = sorted(f"SWITCHHOOK_{name.upper()}" for name in Settings.model_fields)


@pytest.mark.parametrize("document", ["README.md", ".env.example"])
def test_every_switchhook_variable_is_documented(document: str) -> None:
    text = (ROOT / document).read_text()
    missing = [name for name in VARIABLES if f"{name}`" not in text and f"{name}=" not in text]
    assert missing == [], f"{document} does not mention {missing}"
