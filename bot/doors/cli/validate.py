"""`agentplane validate`: check files as they are in the working tree, before committing."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from bot.core.approvers import never_met
from bot.core.errors import NotAGitRepository, SourceError, ValidationFailed
from bot.core.job import BUILTIN_TOOLS, known_tools, parse_job
from bot.core.policy import Policy, merge_policy, parse_config
from bot.core.yamlsrc import MAX_BYTES, decode, parse


def _kind(path: Path) -> str:
    if path.parent.name == "policies":
        return "policy"
    if path.name == "config.yaml" and path.parent.name == ".agentplane":
        return "config"
    return "job"


def read_source(path: Path) -> str:
    """A file's text for parse: never through a symlink, never from a FIFO or device (a
    read that could block or never end), at most MAX_BYTES + 1 bytes of it."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refused(path, "is a symbolic link: agentplane does not follow links") from None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refused(path, "is not a regular file")
        return decode(str(path), f.read(MAX_BYTES + 1))


def _refused(path: Path, why: str) -> ValidationFailed:
    return ValidationFailed([SourceError(str(path), 1, 1, "", why)])


def discover(root: Path) -> list[Path]:
    found = [
        *sorted((root / ".agentplane" / "jobs").glob("*.y*ml")),
        *sorted((root / "policies").glob("*.y*ml")),
    ]
    config = root / ".agentplane" / "config.yaml"
    return [*found, config] if config.is_file() else found


def validate_paths(
    root: Path, paths: list[Path]
) -> tuple[int, list[SourceError], list[SourceError]]:
    """(files checked, every error found, warnings); never stops at the first error.
    Warnings are what is valid but will not do what a user expects (a route whose cost
    cannot be known, so a usd budget cannot hold)."""
    targets = paths or discover(root)
    errors: list[SourceError] = []
    policies: list[tuple[str, str]] = []
    for path in targets:
        try:
            text = read_source(path)
        except OSError as exc:
            errors.append(SourceError(str(path), 1, 1, "", f"cannot read: {exc.strerror}"))
            continue
        except ValidationFailed as exc:
            errors.extend(exc.errors)
            continue
        try:
            kind = _kind(path)
            if kind == "policy":
                policies.append((str(path), text))
            elif kind == "config":
                parse_config(str(path), text)
            else:
                parse_job(str(path), text)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    warnings: list[SourceError] = []
    if policies:
        try:
            warnings = policy_warnings(merge_policy(policies), dict(policies))
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    if not targets:
        errors.append(SourceError(str(root), 1, 1, "", "no job, policy or config files found"))
    return len(targets), errors, warnings


def policy_warnings(policy: Policy, texts: dict[str, str]) -> list[SourceError]:
    """What is valid but will not do what its author expects, located: a route whose cost
    cannot be known, a gate no set of approvers can ever meet."""
    found: list[SourceError] = []
    origin = policy.origins.get("models", "").split("#")[0]
    if origin in texts:
        doc = parse(origin, texts[origin])
        found += [doc.error(("models", *where), m) for where, m in policy.models.cost_notes()]
    directory = policy.directory()
    for gate in policy.gates:
        why = never_met(gate.approvers, lambda p: policy.people_in(p, directory))
        origin = policy.origins.get(f"gates.{gate.id}", "").split("#")[0]
        if why and origin in texts:
            doc = parse(origin, texts[origin])
            ids = [g.get("id") if isinstance(g, dict) else None for g in doc.data.get("gates", [])]
            i = ids.index(gate.id) if gate.id in ids else 0
            found.append(doc.error(("gates", i, "approvers"), f"can never be met: {why}"))
    return found


@dataclass
class PolicySource:
    """The policy a run will use: read from the default branch (origin's, in a clone),
    never from the working tree. ref is as a user names it (`origin/main`)."""

    ref: str
    branch: str = ""
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)
    """Working-tree policy files that are not what the ref holds (changed, added, removed)."""

    def differs_warning(self, path: str) -> str:
        remote = self.ref != self.branch
        where = (
            f"{self.branch} on origin (push a branch, open a pull request)"
            if remote
            else (self.branch)
        )
        return (
            f"{path}: differs from {self.ref}, and runs use {self.ref}'s; to publish your "
            f"change, commit it and merge it into {where}: policy is reviewed like code"
        )


def policy_in_use(root: Path) -> PolicySource | None:
    """Check the policy runs will read, as they read it; None outside a git repository
    (validate then checks files only)."""
    # Imported here: validate outside a repository needs no git.
    from bot.adapters.git import GitRepo
    from bot.core.errors import GitError
    from bot.families.registry import default_families, tool_names
    from bot.run.inputs import describe_ref

    try:
        repo = GitRepo(root)
        ref = repo.policy_ref()
    except GitError as exc:
        if isinstance(exc, NotAGitRepository):
            return None
        # A repository with no commits yet: the files are checked, runs have no policy yet.
        return PolicySource("(none)", notes=[f"cannot tell which policy runs will use: {exc}"])
    shown = ref.removeprefix("refs/remotes/").removeprefix("refs/heads/")
    source = PolicySource(shown, branch=shown.removeprefix("origin/"))
    files = repo.read_dir(ref, "policies", (".yaml", ".yml"))
    try:
        with known_tools(tuple(dict.fromkeys([*BUILTIN_TOOLS, *tool_names(default_families())]))):
            merge_policy(files, describe_ref(ref))
    except ValidationFailed as exc:
        source.errors = [f"{shown}:{e.render()}" for e in exc.errors]
    published = dict(files)
    local = {
        f"policies/{p.name}": p.read_text(encoding="utf-8", errors="replace")
        for p in sorted((repo.root / "policies").glob("*.y*ml"))
        if p.is_file() and not p.is_symlink()
    }
    source.differs = sorted(
        path for path in published.keys() | local.keys() if published.get(path) != local.get(path)
    )
    return source
