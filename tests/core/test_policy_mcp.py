"""Policy's mcp_servers: a server is local (command) or remote (url), never both, and the
README's example is valid policy as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.core.policy import McpServerPolicy, merge_policy

README = Path(__file__).parents[2] / "README.md"
ROLES = "roles:\n  developer: ['*']\n"
TOOLS = {"t": "allow"}


def readme_policy() -> str:
    """The YAML block of the README's "Giving a job an MCP server" section."""
    text = README.read_text()
    section = text[text.index("### Giving a job an MCP server") :]
    found = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert found, "the README's MCP policy section has no YAML block"
    return found.group(1)


def test_the_readmes_mcp_policy_is_valid_policy_with_a_local_and_a_remote_server() -> None:
    policy = merge_policy([("policies/default.yaml", ROLES + readme_policy())])
    assert policy.job_types["code"].mcp_servers == ["git", "tickets"]
    git, tickets = policy.mcp_servers["git"], policy.mcp_servers["tickets"]
    assert not git.remote and git.command[:3] == ["python3", "-m", "mcp_server_git"]
    assert tickets.remote and tickets.url == "https://mcp.tickets.example.com/mcp"
    assert tickets.headers["Authorization"].credential == "tickets"
    assert tickets.headers["Authorization"].prefix == "Bearer "
    assert tickets.rule_for("close_ticket") is not None


@pytest.mark.parametrize(
    ("server", "says"),
    [
        ({"tools": TOOLS}, "a `command` (local) or a `url` (remote)"),
        ({"command": ["x"], "url": "https://h/mcp", "tools": TOOLS}, "takes no command"),
        (
            {"url": "https://h/mcp", "credentials": {"T": "t"}, "network": ["h"]},
            "takes no credentials, network",
        ),
        (
            {"command": ["x"], "headers": {"Authorization": {"credential": "t"}}},
            "`headers` are for a remote server",
        ),
        ({"url": "ftp://h/mcp"}, "is not an http(s) URL"),
        ({"url": "https://user:pw@h/mcp"}, "in `headers`, not in its URL"),
        ({"url": "https:///mcp"}, "is not an http(s) URL"),
    ],
)
def test_a_server_is_local_or_remote_and_says_which_field_is_wrong(
    server: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        McpServerPolicy.model_validate(server)
