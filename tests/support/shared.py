"""Where the shared reference data lives: beside the checkout (CI copies it there)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    candidates = [
        os.environ.get("AGENTPLANE_SHARED"),
        str(Path(__file__).resolve().parents[3] / "shared"),
        "/work/shared",
    ]
    for c in candidates:
        if c and (Path(c) / "github").is_dir():
            return Path(c)
    raise FileNotFoundError("cannot find shared/github: set AGENTPLANE_SHARED")


GITHUB = shared_dir() / "github"
