"""The error root: every failure a user can act on is an AgentplaneError."""

from __future__ import annotations


class AgentplaneError(Exception):
    """Base of every error agentplane reports to a user (never with a traceback)."""


class SourceError(AgentplaneError):
    """An error located in a file: `path:line:col: field: message`."""

    def __init__(self, path: str, line: int, col: int, field: str, message: str) -> None:
        self.path = path
        self.line = line
        self.col = col
        self.field = field
        self.message = message
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.path}:{self.line}:{self.col}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ValidationFailed(AgentplaneError):
    """One or more SourceErrors found in the same file."""

    def __init__(self, errors: list[SourceError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.render() for e in errors))


class SandboxError(AgentplaneError):
    """The sandbox could not be started or a backend is unavailable."""


class AuditError(AgentplaneError):
    """The audit branch is missing, unreadable or fails verification."""


class GitError(AgentplaneError):
    """A git operation on the target repository failed."""


class NotAGitRepository(GitError, AuditError):
    """The path a command was given is not inside a git repository: one wording for every
    command, whether GitPython (the working tree) or pygit2 (the audit branch) found it
    out; it is both a GitError and an AuditError so either adapter's callers catch it."""

    def __init__(self, path: object) -> None:
        super().__init__(f"{path} is not inside a git repository (run `git init` first)")


class RunError(AgentplaneError):
    """A run cannot proceed (unknown run, wrong state, stale approval...)."""


class CancelRefused(RunError):
    """A cancel that cannot happen: the run has already ended or is being carried forward,
    or the person is neither its requester nor one of its approvers."""


class NotAwaitingApproval(RunError):
    """A decision on a run that is not waiting for one (already applied, cancelled...)."""


class ApprovalNotCounted(RunError):
    """A decision that was recorded but does not count; `reason` and `rule` say why.

    Doors that expect it (a PR review is often not an approval that counts) read the
    engine's Outcome instead; the terminal raises this to exit with the reason."""

    def __init__(self, message: str, reason: str, rule: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.rule = rule


class StaleApproval(ApprovalNotCounted):
    """The decision was about another commit or proposal than the one the run now shows."""


class ProposalRefused(AgentplaneError):
    """The proposal cannot be stored; the message says why (never with a secret's value).
    `path` and `line` locate the added line that was refused, when one was, so a family
    that staged the text from a cell or a slide can say which without reading the message."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
