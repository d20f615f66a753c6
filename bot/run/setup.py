"""Setup: the repository's own commands install its dependencies into /env, in the
sandbox, before the agent; the environment is kept and reused while what setup executes
and reads is unchanged.

The setup sandbox reaches only the registries policy names (through the egress proxy,
every request recorded with phase `setup`), writes only /env and a throwaway copy of the
commit, and leaves an environment that the agent and verify sandboxes mount read-only.

What keys an environment (conservative: a key that changes too often costs an install,
one that changes too rarely would serve a stale or poisoned environment):
- the commands, in order;
- the content (git's blob ids) of every file the repo config's `setup.inputs` globs match
  at the run's commit (default `**`, the whole commit); setup runs the project's own code
  (setup.py, a build backend), so whatever it reads must be named there to be reused;
- the registries and private networks it may reach;
- the backend and its base (the Docker image id; for bubblewrap the host's Python and OS);
- the trust domain: a commit on the default branch is `default`; a pull request's runs
  share `pr-<n>`; any other commit is a domain of its own. An environment built by a pull
  request never serves a run of the default branch.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tempfile
import time
from pathlib import Path

from bot.adapters.git import GitRepo
from bot.adapters.sandbox import Limits, SandboxBackend, SandboxSpec
from bot.adapters.sandbox.envcache import CachedEnv, EnvCache
from bot.adapters.sandbox.spec import ENV_MOUNT, UNREACHABLE, EgressEvent
from bot.core.canonical import canonical_json, sha256_hex
from bot.core.errors import AgentplaneError, SandboxError
from bot.core.globs import match_any
from bot.core.plan import Plan, SetupPlan
from bot.core.record import DoorRef, EgressEntry, SetupResult, SetupStep
from bot.run.redact import Redactor

KEY_VERSION = 1
OUTPUT_TAIL = 4096
"""Characters of a setup command's output the record keeps (its tail)."""
ENV_PATH = f"{ENV_MOUNT}/bin:/usr/local/bin:/usr/bin:/bin"


def phase_env(env: CachedEnv | Path | None) -> tuple[tuple[str, str], ...]:
    """The environment variables a phase gets when a project environment is mounted: its
    programs first on PATH (a venv at /env is then the `python`)."""
    if env is None:
        return ()
    return (("PATH", ENV_PATH), ("AGENTPLANE_ENV", ENV_MOUNT))


def trust_domain(repo: GitRepo, commit: str, door_ref: DoorRef | None) -> str:
    """Whose environment a run may use: see the module's docstring."""
    try:
        on_default = repo.is_ancestor(commit, repo.policy_ref())
    except AgentplaneError:
        on_default = False
    if on_default:
        return "default"
    if door_ref is not None and door_ref.number is not None:
        return f"pr-{door_ref.number}"
    return f"commit-{commit}"


def input_files(repo: GitRepo, commit: str, globs: list[str]) -> list[str]:
    """`path blob-id` of every file at commit the setup inputs name, sorted."""
    return sorted(
        f"{path} {mode} {blob}"
        for path, mode, blob in repo.tree_entries(commit)
        if match_any(path, globs)
    )


def environment_key(
    setup: SetupPlan, inputs: list[str], backend: str, base: str, trust: str
) -> str:
    return sha256_hex(
        canonical_json(
            {
                "v": KEY_VERSION,
                "commands": setup.commands,
                "inputs": inputs,
                "registries": setup.registries,
                "private_networks": list(setup.private_networks),
                "backend": backend,
                "base": base,
                "trust": trust,
            }
        )
    )


@dataclasses.dataclass(frozen=True)
class Prepared:
    result: SetupResult
    env: CachedEnv | None
    """What to mount read-only at /env; None when setup failed."""
    egress: list[EgressEntry]


def prepare(
    repo: GitRepo,
    backend: SandboxBackend,
    p: Plan,
    run_id: str,
    commit: str,
    door_ref: DoorRef | None,
    redact: Redactor,
) -> Prepared:
    """Reuse the environment for this run's setup inputs, or build it in the sandbox."""
    setup = p.setup
    assert setup is not None
    cache = EnvCache.for_repo(repo.git_dir, setup.cache_bytes)
    trust = trust_domain(repo, commit, door_ref)
    inputs = input_files(repo, commit, setup.inputs)
    key = environment_key(setup, inputs, backend.name, backend.base_identity(), trust)
    base = SetupResult(key=key, trust_domain=trust, inputs=inputs, reused=False)
    found = cache.lookup(key)
    if found is not None:
        result = base.model_copy(
            update={
                "reused": True,
                "env_digest": found.digest,
                "size_bytes": found.size_bytes,
                "built_by": found.built_by,
            }
        )
        return Prepared(result, found, [])
    build = cache.building()
    try:
        steps, events = _run(repo, backend, setup, commit, build, redact)
        egress = [_egress_entry(e, p) for e in events]
        failed = next((s for s in steps if not s.passed), None)
        if failed is not None:
            status = "timed out" if failed.exit_code is None else f"exited {failed.exit_code}"
            error = f"setup command `{failed.command}` {status}"
            cache.discard(build)
            return Prepared(base.model_copy(update={"steps": steps, "error": error}), None, egress)
        try:
            kept = cache.keep(key, build, setup.max_env_bytes, built_by=run_id)
        except SandboxError as exc:
            return Prepared(
                base.model_copy(update={"steps": steps, "error": str(exc)}), None, egress
            )
    except BaseException:
        cache.discard(build)
        raise
    done = base.model_copy(
        update={"steps": steps, "env_digest": kept.digest, "size_bytes": kept.size_bytes}
    )
    return Prepared(done, kept, egress)


def _run(
    repo: GitRepo,
    backend: SandboxBackend,
    setup: SetupPlan,
    commit: str,
    build: Path,
    redact: Redactor,
) -> tuple[list[SetupStep], list[EgressEvent]]:
    """The commands in a sandbox of their own: a throwaway copy of the commit (writable:
    builds write egg-info and the like there), /env writable, only the registries."""
    steps: list[SetupStep] = []
    deadline = time.monotonic() + setup.minutes * 60
    with tempfile.TemporaryDirectory(prefix="agentplane-setup-") as tmp:
        ws = Path(tmp)
        repo.export(commit, ws)
        spec = SandboxSpec(
            ws,
            ("**",),
            # CPU as long as the wall time: an install compiles, unlike a tool call.
            limits=Limits(wall_seconds=setup.minutes * 60, cpu_seconds=int(setup.minutes * 60)),
            env=phase_env(build),
            network="allowlist" if setup.registries else "none",
            allow_domains=tuple(setup.registries),
            egress_private_ok=setup.private_networks if setup.registries else (),
            env_dir=build,
            env_writable=True,
        )
        with backend.start(spec) as box:
            for command in setup.commands:
                left = deadline - time.monotonic()
                started = time.perf_counter()
                out = box.exec(["sh", "-c", command], timeout=left) if left > 0 else None
                text = "" if out is None else out.stdout + out.stderr
                code = None if out is None or out.timed_out else out.exit_code
                steps.append(
                    SetupStep(
                        command=command,
                        exit_code=code,
                        output=redact(text[-OUTPUT_TAIL:]),
                        duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    )
                )
                if code != 0:
                    break
            events = box.egress_log()
    return steps, events


def _egress_entry(event: EgressEvent, p: Plan) -> EgressEntry:
    """A setup request with the registry grant that let it through (or default deny)."""
    fields = dataclasses.asdict(event)
    proxy_rule = fields.pop("rule")
    grants = [d for d in p.decisions if d.kind == "registry" and d.granted]
    matched = next((d for d in grants if d.subject in event.rule), None)
    rule, network_rule = "policy#setup.registries (not granted: default deny)", ""
    if event.decision in ("allow", UNREACHABLE) and matched is not None:
        rule = matched.rule
        if event.address and not ipaddress.ip_address(event.address).is_global:
            network_rule = p.setup.rule + ".private_networks" if p.setup else ""
    return EgressEntry(
        **fields, rule=rule, proxy_rule=proxy_rule, network_rule=network_rule, phase="setup"
    )
