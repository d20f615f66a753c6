"""Model adapter tests run litellm's real HTTP path against tests/support/model_server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.model_server import KEY, KEY_ENV, ModelServer


@pytest.fixture(autouse=True)
def model_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key every test deployment names (os.environ/...), as a real host would hold it."""
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as s:
        yield s
