"""Model adapter tests run litellm's real HTTP path against tests/support/model_server,
each with the key its deployments name (the `model_key` fixture of tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _key(model_key: None) -> None:
    return None
