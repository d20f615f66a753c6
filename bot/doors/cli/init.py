"""`agentplane init`: a first policy, job, model script and workflow in your repository.

The files are package data (`bot/doors/cli/starter/`), so `init` works from an installed
wheel as well as from a checkout. Nothing is overwritten and nothing is written through
a symlink the repository holds.
"""

from __future__ import annotations

import errno
from pathlib import Path
from string import Template

import click

from bot.core.errors import AgentplaneError, GitError
from bot.doors.cli.common import repo_option

STARTER = Path(__file__).resolve().parent / "starter"
FILES = (
    "policies/default.yaml",
    "policies/routing.yaml",
    ".agentplane/config.yaml",
    ".agentplane/jobs/first-job.yaml",
    ".agentplane/scripts/first-job.yaml",
    ".github/workflows/agentplane.yml",
)
POLICY = "policies/default.yaml"
JOB = "first-job"


class InitRefused(AgentplaneError):
    """`init` would overwrite a file, or write through a link, in the repository."""


def register(cli: click.Group) -> None:
    cli.add_command(init)


def starter_files(developer: str, maintainers: list[str]) -> dict[str, str]:
    """The files init writes, by path, with the people filled into policy."""
    out = {rel: (STARTER / rel).read_text(encoding="utf-8") for rel in FILES}
    people = {"developer": developer, "maintainer": ", ".join(maintainers)}
    out[POLICY] = Template(out[POLICY]).substitute(people)
    return out


def _existing(root: Path, rels: list[str]) -> list[str]:
    from bot.adapters import safefs

    found = []
    with safefs.root(root) as fd:
        for rel in rels:
            try:
                entry = safefs.lookup(fd, rel)
            except FileNotFoundError:
                continue
            except safefs.UnsafePath:
                found.append(f"{rel} (its path goes through a symlink)")
                continue
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                    found.append(f"{rel} (its path goes through a symlink or a file)")
                    continue
                raise
            found.append(rel if entry.kind != "link" else f"{rel} (a symlink)")
    return found


@click.command()
@click.option(
    "--approver",
    "approvers",
    multiple=True,
    help="Who approves runs (an email; repeat for more). Default: you, and then a gate "
    "waits for a second maintainer, since authors never approve their own run.",
)
@repo_option
def init(approvers: tuple[str, ...], repo: str) -> None:
    """Write .agentplane/ (a first job and its recorded model script), policies/ (with
    comments) and an example workflow, then print the next three commands."""
    from bot.adapters import safefs
    from bot.adapters.git import GitRepo

    git = GitRepo(Path(repo))
    try:
        me = git.identity()
    except GitError:
        me = "you@example.com"
    files = starter_files(me, list(approvers) or [me])
    taken = _existing(git.root, list(files))
    if taken:
        raise InitRefused(
            "agentplane init writes nothing over what is there: "
            + ", ".join(taken)
            + " already exist(s); move them away or edit them by hand"
        )
    with safefs.root(git.root) as fd:
        for rel, text in files.items():
            safefs.write_bytes(fd, rel, text.encode())
            click.echo(f"wrote {rel}")
    if not approvers:
        click.echo(
            f"note: {POLICY} lists only you ({me}) as maintainer; authors never approve "
            "their own run, so add the people who approve under roles.maintainer"
        )
    click.echo(
        "\nNext (policy is read from the default branch, so commit it there first; in a "
        "clone, push it to origin):\n"
        f'  git add policies .agentplane .github && git commit -m "agentplane init"\n'
        f"  agentplane validate && agentplane plan {JOB}\n"
        f"  agentplane run {JOB}          # then an approver runs `agentplane approve RUN`"
    )
