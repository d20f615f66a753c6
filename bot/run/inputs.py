"""What a run step reads from the repository: policy (default branch only), the repo's
config and the job (at the run's commit), and the plan made from them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime

from bot.adapters.audit.trust import Trust
from bot.adapters.git import GitRepo
from bot.core.errors import RunError
from bot.core.identity import Directory, Resolver, normalise
from bot.core.job import Job, known_tools, parse_job
from bot.core.plan import Plan, plan
from bot.core.policy import Policy, RepoConfig, merge_policy, parse_config
from bot.core.request import Door, RunRequest
from bot.run.redact import host_secrets, redact_logs
from bot.run.storage import RunStore

JOBS_DIR = ".agentplane/jobs"
CONFIG_PATH = ".agentplane/config.yaml"


def describe_ref(ref: str) -> str:
    """How a user names the ref policy was read from: `origin/main`, or `main`."""
    short = ref.removeprefix("refs/remotes/").removeprefix("refs/heads/")
    return f"the default branch ({short})"


def job_path(name_or_path: str) -> str:
    if name_or_path.endswith((".yaml", ".yml")):
        return name_or_path
    return f"{JOBS_DIR}/{name_or_path}.yaml"


class Inputs:
    def __init__(
        self,
        repo: GitRepo,
        store: RunStore,
        tool_names: tuple[str, ...],
        implied: Mapping[str, tuple[str, ...]],
    ) -> None:
        self.repo = repo
        self.store = store
        self.tool_names = tool_names
        """Every tool name this engine serves: what policy and job files may name."""
        self.implied = implied
        """Capability -> actions its tools perform (the families'), gated by the plan."""
        self.resolve_login: Resolver | None = None
        """Set by a door that knows GitHub: policy's logins become numeric ids through it."""

    def policy(self) -> Policy:
        """Policy from the default branch only: a feature branch cannot grant itself more.

        Reading it also arms the store: records are read through policy's signers, and the
        redactor learns what policy names (model keys routing reads, connections' DSNs)."""
        ref = self.repo.policy_ref()
        files = self.repo.read_dir(ref, "policies", (".yaml", ".yml"))
        with known_tools(self.tool_names):  # policy may grant any tool this engine serves
            policy = merge_policy(files, describe_ref(ref))
        self.store.redactor = self.store.redactor.with_secrets(host_secrets(os.environ, policy))
        redact_logs(self.store.redactor)  # log lines (litellm's errors) learn the keys too
        self.store.trust(policy)
        return policy

    def directory(self, policy: Policy) -> Directory:
        return policy.directory(self.resolve_login)

    def signed_problem(self, policy: Policy, door: str) -> str | None:
        """Why an approval from this door is not signed as policy asks, or None."""
        if door not in policy.approvals.signed:
            return None
        own = self.store.audit.own_key()
        listed = None if own is None else Trust.from_policy(policy.audit.signers).lookup(own[1])
        if listed is None:
            return (
                f"{door} approvals must be signed by a key policy lists "
                f"({policy.rule('approvals.signed')}); this host's key is not in audit.signers "
                "(see `agentplane audit key`)"
            )
        if listed.revoked_at is not None and listed.revoked_at <= datetime.now(UTC):
            return f"this host's signing key {listed.name!r} was revoked {listed.revoked_at}"
        return None

    def config(self, commit: str) -> RepoConfig | None:
        # Read at the run's own commit: a config can only narrow, so a branch may tighten it.
        text = self.repo.read_file(commit, CONFIG_PATH)
        if text is None:
            return None
        with known_tools(self.tool_names):
            return parse_config(CONFIG_PATH, text)

    def load_job(self, name_or_path: str, commit: str) -> tuple[str, Job]:
        path = job_path(name_or_path)
        text = self.repo.read_file(commit, path)
        if text is None:
            raise RunError(
                f"{path} is not in commit {commit[:12]}: runs are bound to a commit, "
                "so commit the job file first"
            )
        return path, parse_job(path, text, self.tool_names)

    def request(
        self,
        job: str,
        *,
        prompt: str | None = None,
        door: Door = "cli",
        requester: str | None = None,
        requester_name: str = "",
        commit: str | None = None,
    ) -> RunRequest:
        commit = commit or self.repo.head_commit()
        path, parsed = self.load_job(job, commit)
        return RunRequest(
            job=parsed,
            job_path=path,
            prompt=prompt,
            door=door,
            requester=normalise(requester or self.repo.identity()),
            requester_name=requester_name,
            repo=self.repo.root.name,
            commit=commit,
        )

    def plan(self, req: RunRequest, policy: Policy | None = None) -> Plan:
        policy = policy or self.policy()
        return plan(
            req, policy, self.config(req.commit), self.directory(policy), implied=self.implied
        )
