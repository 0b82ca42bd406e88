"""API tests: cheap password hashing, so each of the many logins costs microseconds instead of ~200 ms."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from switchhook.services import auth


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    # Still argon2 (the stored format is unchanged); only the cost parameters are the minimum.
    monkeypatch.setattr(auth, "_password_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
