"""One bot for the fault suites, as separate processes would run it: the webhook endpoint,
a worker, the reconciler, each a fresh process (forked) over the same data directory.

The job is small on purpose (one write, no shell, no verify): what the suites exercise is
the run path around the agent, and each kill may cost a fresh proposal.
"""

from __future__ import annotations

import importlib
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import litellm
from fastapi.testclient import TestClient

import bot.adapters.model.client  # noqa: F401  (imports litellm once, before the forks)
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.doors.github.client import GitHubClient
from bot.doors.github.flow import PullRequestDoor, reconcile
from bot.doors.github.queue import Backoff, SqliteQueue
from bot.doors.github.server import Metrics, Worker, create_app
from bot.doors.github.settings import Settings
from bot.doors.github.state import PullState
from bot.run.redact import token_patterns

from .door import JOB, repo_files
from .server import GitHubDouble

SCRIPT = ".agentplane/scripts/fix-failing-test.yaml"
FIXED = '"""A tiny calculator."""\n\n\ndef add(a: int, b: int) -> int:\n    return a + b\n'
JOB_TEXT = """job_type: code
repo: demo
prompt: |
  add() in src/calc.py subtracts. Make it add.
  Done when add(2, 3) returns 5.
tools: [filesystem]
scope:
  filesystem:
    read: ["**"]
    write: ["src/**"]
approval_required_for: [write]
artifact_contract: diff
budget: {usd: 0.5, minutes: 5, tool_calls: 5}
"""
SCRIPT_TEXT = f"""turns:
  - content: Fixing add().
    tool_calls:
      - name: fs_write
        arguments:
          path: src/calc.py
          content: {FIXED!r}
  - content: add() adds now.
"""


def warm_up(github: GitHubDouble, root: Path) -> None:
    """Load, once in the parent, what every forked bot would otherwise load for itself."""
    # litellm loads its router and tokenizer lazily (building a Router here would not do:
    # its native core refuses to run in a forked child).
    for module in (
        "litellm.router",
        "litellm.router_rust.core",  # a Router's core, imported only when one is built
        "litellm.integrations.SlackAlerting.slack_alerting",
    ):
        importlib.import_module(module)
    litellm.token_counter(model="gpt-4o", text="warm up")
    token_patterns()  # the redactor's detect-secrets patterns, imported on first use
    GitHubClient(Bot(github, root).settings)  # parses the App's key, once per process


def small_repo() -> dict[str, str]:
    return {**repo_files(), SCRIPT: SCRIPT_TEXT}


@dataclass
class Bot:
    github: GitHubDouble
    root: Path
    timeout: int = 15
    backoff: float = 1.0
    sent: list[str] = field(default_factory=list)
    """Every delivery GUID GitHub sent (and re-sent until it got an answer)."""

    @property
    def settings(self) -> Settings:
        return Settings(
            webhook_secrets=("s",),
            app_id=self.github.app_id,
            app_private_key=self.github.app_private_key_pem,
            api_url=self.github.api_url,
            data_dir=self.root,
            github_throttle=False,
            github_timeout=self.timeout,
            github_backoff=self.backoff,
        )

    def queue(self) -> SqliteQueue:
        # A failed delivery comes back in well under a second here, not after minutes.
        return SqliteQueue(self.root / "queue.db", Backoff(base=0.05, cap=0.2))

    def door(self) -> PullRequestDoor:
        return PullRequestDoor(self.settings, BwrapBackend(), PullState(self.root / "state.db"))

    # -- what each process does (run in a forked child) ----------------------------------

    def accept(self, event: str, payload: dict[str, Any], guid: str) -> None:
        """The webhook endpoint receives one delivery and answers it."""
        headers, body = self.github.signed(event, payload, "s", delivery=guid)
        client = TestClient(create_app(self.settings, self.queue()))
        answer = client.post("/webhook", content=body, headers=headers)
        assert answer.status_code == 202, answer.text

    def work(self) -> None:
        """A worker drains the queue (a fresh process: it resolves what a dead one left)."""
        queue = self.queue()
        worker = Worker(queue, self.door().handle, Metrics(), lease_seconds=0.0)
        for _ in range(400):
            if not worker.run_once():
                if not queue.counts().get("queued"):
                    return
                time.sleep(0.02)  # a failed delivery waits out its (short) backoff
        raise AssertionError(f"the queue does not drain: {self.errors()}")

    def errors(self) -> list[tuple[str, str, str]]:
        """(GUID, state, error) of every delivery that failed at least once."""
        with sqlite3.connect(self.root / "queue.db") as db:
            return list(
                db.execute(
                    "SELECT delivery_id, state, error FROM deliveries WHERE error IS NOT NULL"
                )
            )

    def reconcile(self) -> None:
        """One reconciler pass, then the worker."""
        queue = self.queue()
        reconcile(self.door(), queue.put)
        self.work()

    # -- inspection (in the test process, once no child runs) ----------------------------

    def deliveries(self) -> dict[str, str]:
        """GUID -> state of every delivery in the queue."""
        with sqlite3.connect(self.root / "queue.db") as db:
            return dict(db.execute("SELECT delivery_id, state FROM deliveries"))

    def newest_run(self, repo: str, number: int) -> str:
        runs = PullState(self.root / "state.db").runs(repo, number)
        assert runs, f"no run for {repo}#{number}"
        return runs[-1][2]


__all__ = ["JOB", "JOB_TEXT", "Bot", "small_repo", "warm_up"]
