"""Fixtures for tests that talk to GitHub: a spec-checked double per test, the spec once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import openapi
from tests.support.github import GitHubDouble


@pytest.fixture(scope="session")
def github_spec() -> openapi.OpenAPI:
    return openapi.load()


@pytest.fixture
def github(tmp_path: Path, github_spec: openapi.OpenAPI) -> Iterator[GitHubDouble]:
    """A running double; the test fails at teardown if anything off-spec went over the wire."""
    with GitHubDouble(tmp_path) as gh:
        yield gh
        violations = list(gh.violations)
        gh.violations.clear()  # so a test that expects violations can clear them itself
    assert violations == [], "off-spec GitHub traffic:\n" + "\n".join(violations)
