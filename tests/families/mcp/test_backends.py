"""A local MCP server runs under the job's sandbox backend: the one the job type requires,
else the one the job's own sandbox runs in; apply starts it under the same one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import yaml

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.backends import make_backend
from bot.demo.code import MAINTAINER
from bot.run.engine import Engine
from tests.conftest import Scripted, git
from tests.families.mcp.conftest import grant_mcp, witnessed_server
from tests.families.mcp.test_witnessed import call, calls
from tests.support.witness import Witness

TOOLS = {"sandbox": "allow", "publish": {"decision": "needs_approval", "action": "submit"}}


def require_backend(demo_repo: Path, backend: str) -> None:
    path = demo_repo / "policies/default.yaml"
    policy = yaml.safe_load(path.read_text())
    policy["job_types"]["code"]["backend"] = backend
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    git(demo_repo, "commit", "-qam", f"code jobs run under {backend}")


@pytest.fixture(scope="module")
def libs() -> Iterator[Path]:
    """The host's copies of what pydantic-core links beyond libc, readable by any uid."""
    with tempfile.TemporaryDirectory(prefix="agentplane-mcp-libs-") as top:
        os.chmod(top, 0o755)
        for name in ("libgcc_s.so.1", "librt.so.1", "libpthread.so.0", "libdl.so.2"):
            found = [*Path("/lib").glob(f"*-linux-gnu/{name}"), *Path("/usr/lib").glob(f"*/{name}")]
            shutil.copy(found[0], top)
        yield Path(top)


@pytest.mark.parametrize(
    ("engine_default", "required", "expected"),
    [("docker", "bwrap", "bwrap"), ("docker", None, "docker")],
)
def test_the_server_runs_under_the_jobs_backend_at_propose_and_at_apply(
    demo_repo: Path,
    scripted_job: Scripted,
    engine_default: str,
    required: str | None,
    expected: str,
    libs: Path,
) -> None:
    for name in {engine_default, expected}:
        ok, why = make_backend(name).available()
        if not ok:
            if name in os.environ.get("AGENTPLANE_REQUIRE_BACKENDS", "").split(","):
                pytest.fail(f"{name} backend required but unavailable: {why}")
            pytest.skip(f"{name} backend unavailable: {why}")
    with Witness() as witness:
        server = witnessed_server(witness.url, witness.port, TOOLS)
        # The server's install is this venv; under Docker it also needs the system
        # libraries pydantic-core links, which the sandbox image does not carry.
        mounts, env = cast(list[str], server["mounts"]), cast(dict[str, str], server["env"])
        server |= {"mounts": [*mounts, str(libs)], "env": {**env, "LD_LIBRARY_PATH": str(libs)}}
        grant_mcp(demo_repo, {"notes": server})
        if required:
            require_backend(demo_repo, required)
        job = scripted_job(
            "mcp-backend",
            [call("sandbox"), call("publish", text="hi"), {"content": "held"}],
            tools=["mcp"],
            scope={},
            prompt="say where you run, then publish; done when held",
        )
        e = Engine(GitRepo(demo_repo), make_backend(engine_default))
        rec = e.start(e.request(job))
        assert rec.state == "awaiting_approval", rec.transitions[-1]
        where = next(c for c in rec.tool_calls if c.tool == "mcp__notes__sandbox")
        assert where.result.strip() == expected, where.result
        # Under Docker too, its only way out is the egress proxy, and that is recorded.
        assert {(g.host, g.decision) for g in rec.egress if g.by == "mcp:notes"} == {
            ("127.0.0.1", "allow")
        }
        witness.phase = "apply"
        done = e.decide(rec.run_id, MAINTAINER[1], "approve")
        assert done.kind == "applied", done.reason
        assert calls(witness, "apply") == [("publish", {"text": "hi"})]
        # Every request the server received, at propose and at apply, it received there.
        seen = {(h.phase, json.loads(h.body)["sandbox"]) for h in witness.hits}
        assert seen == {("propose", expected), ("apply", expected)}, seen
