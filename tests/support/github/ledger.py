"""What the bot left at the GitHub double, counted: the figures the fault suites assert on.

A duplicate is any side effect that happened twice: two comments carrying one marker, two
check runs of one name on one commit, two applied commits for one run on a branch, or
two pushed audit records for one step of one run (or a run applied twice).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pygit2

from .server import GitHubDouble

MARKER = re.compile(r"<!-- agentplane:(.+?) -->")
AUDIT = "refs/heads/agentplane/audit"


@dataclass
class Ledger:
    comments: int = 0
    check_runs: int = 0
    applied_commits: int = 0
    audit_records: int = 0
    duplicates: list[str] = field(default_factory=list)


def audit_records(github: GitHubDouble, repo: str) -> list[dict[str, Any]]:
    """The records on the repository's pushed audit branch, oldest first."""
    git = github.repo(repo).git()
    ref = git.references.get(AUDIT)
    if ref is None:
        return []
    tree = git[ref.target].peel(pygit2.Commit).tree
    if "log" not in tree:
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    for shard in git[tree["log"].id].peel(pygit2.Tree):
        for blob in git[shard.id].peel(pygit2.Tree):
            data = json.loads(git[blob.id].peel(pygit2.Blob).data)
            record = data.get("record", data)
            found.append((f"{shard.name}/{blob.name}", record))
    return [r for _, r in sorted(found, key=lambda x: x[0])]


def count(github: GitHubDouble, repo: str, branches: list[str]) -> Ledger:
    """Everything the bot did on repo, with every duplicate named."""
    out = Ledger()
    numbers = {n for (r, n) in github.pulls if r == repo}
    for number in sorted(numbers):
        markers = Counter(
            m.group(1) for c in github.comments(repo, number) if (m := MARKER.search(c.body))
        )
        out.comments += sum(markers.values())
        out.duplicates += [
            f"#{number}: {n} comments marked {k}" for k, n in markers.items() if n > 1
        ]
    checks = Counter((c["name"], c["head_sha"]) for c in github.check_runs(repo))
    out.check_runs = sum(checks.values())
    out.duplicates += [f"{n} check runs {k[0]} on {k[1][:12]}" for k, n in checks.items() if n > 1]
    git = github.repo(repo).git()
    for branch in branches:
        ref = git.references.get(f"refs/heads/{branch}")
        if ref is None:
            continue
        runs = Counter(
            m.group(1)
            for c in git.walk(ref.target)
            if (m := re.search(r"^Agentplane-Run: (\S+)$", c.message, re.M))
            and len(c.parents) == 1  # a merge of two runs names the later one again
        )
        out.applied_commits += sum(runs.values())
        out.duplicates += [f"{branch}: {n} commits apply {k}" for k, n in runs.items() if n > 1]
    records = audit_records(github, repo)
    out.audit_records = len(records)
    steps = Counter((r["run_id"], len(r.get("transitions", []))) for r in records)
    out.duplicates += [
        f"audit: {n} records of {k[0]} step {k[1]}" for k, n in steps.items() if n > 1
    ]
    applied = Counter(r["run_id"] for r in records if r.get("state") == "applied")
    out.duplicates += [f"audit: {k} applied {n} times" for k, n in applied.items() if n > 1]
    return out
