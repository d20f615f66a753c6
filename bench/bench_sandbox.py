"""What a sandboxed command costs: bwrap start + `cat` against a bare subprocess `cat`."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bot.sandbox.bwrap import BwrapBackend
from bot.sandbox.spec import SandboxSpec

ITERATIONS = 30


def _median_ms(run: Callable[[], None], n: int) -> float:
    run()  # warm-up: page cache, first exec of each binary
    times = []
    for _ in range(n):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def main() -> None:
    backend = BwrapBackend()
    ok, reason = backend.available()
    if not ok:
        sys.exit(f"bwrap backend unavailable: {reason}")
    workspace = Path(tempfile.mkdtemp(prefix="agentplane-bench-"))
    try:
        target = workspace / "file.txt"
        target.write_text("hello from the workspace\n" * 40)
        spec = SandboxSpec(workspace, ("out/*",))

        def sandboxed() -> None:
            with backend.start(spec) as sandbox:
                result = sandbox.exec(["cat", "file.txt"])
            assert result.exit_code == 0, result

        def bare() -> None:
            subprocess.run(["cat", str(target)], check=True, capture_output=True)

        sandbox_ms = _median_ms(sandboxed, ITERATIONS)
        bare_ms = _median_ms(bare, ITERATIONS)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    print(
        f"sandbox bwrap start+cat: {sandbox_ms:.1f} ms median; "
        f"bare subprocess: {bare_ms:.1f} ms; ratio {sandbox_ms / bare_ms:.1f}x "
        f"({ITERATIONS} iterations)"
    )


if __name__ == "__main__":
    main()
