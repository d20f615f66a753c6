"""Comment commands: a pure parser from comment text to a Command or a Reply.

Only plain lines starting with `/agentplane` count: the comment is parsed as
Markdown (markdown-it-py, with GitHub's tables), and a command is a line of a
top-level paragraph. Code blocks, fenced or indented, inline code, quotes,
lists, tables and HTML are what someone is showing or quoting, not asking for.
Anything else in the comment is conversation. Authorisation is not decided
here: the commenter's role is checked against policy where the command is
executed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

from markdown_it import MarkdownIt
from markdown_it.token import Token

PREFIX = "/agentplane"
VERBS = {
    "plan": "show the plan for the jobs in this PR",
    "apply": "apply the approved proposal now (re-checks the head SHA and the approval)",
    "rerun": "run the jobs again on the current head",
    "cancel": "cancel the open runs of this PR",
    "answer": "answer the agent's question: /agentplane answer <text>",
    "rollback": "undo this PR's newest applied run (or RUN) as a new run, approved by review:"
    " /agentplane rollback [RUN]",
    "help": "show this help",
}
MAX_COMMENT = 65536  # GitHub's own limit on a comment body; past it nothing is a command
_MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])
HELP = "agentplane commands:\n" + "\n".join(
    f"- `{PREFIX} {verb}`: {what}" for verb, what in VERBS.items()
)


@dataclass(frozen=True)
class Command:
    verb: str
    argument: str = ""


@dataclass(frozen=True)
class Reply:
    text: str


def plain_lines(body: str) -> Iterator[str]:
    """The lines of top-level paragraphs, as text; a line that begins inside inline code
    (or any other markup) begins with that markup, so it is never a command."""
    tokens = _MD.parse(body[:MAX_COMMENT])
    for opening, inline in pairwise(tokens):
        if opening.type != "paragraph_open" or opening.level != 0 or inline.type != "inline":
            continue
        line: list[Token] = []
        for child in [*(inline.children or []), Token("softbreak", "", 0)]:
            if child.type not in ("softbreak", "hardbreak"):
                line.append(child)
                continue
            if line and line[0].type == "text":
                yield "".join(_text(t) for t in line)
            line = []


def _text(token: Token) -> str:
    if token.type == "text":
        return token.content
    if token.type == "code_inline":
        return f"{token.markup}{token.content}{token.markup}"
    return ""


def parse_comment(body: str) -> Command | Reply | None:
    """The first `/agentplane` line decides; None when the comment holds no command."""
    for raw in plain_lines(body):
        line = raw.strip()
        if not (line == PREFIX or line.startswith(PREFIX + " ")):
            continue
        words = line[len(PREFIX) :].strip().split(maxsplit=1)
        if not words:
            return Reply(HELP)
        verb, argument = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
        if verb not in VERBS:
            guess = difflib.get_close_matches(verb, VERBS, n=1)
            hint = f" Did you mean `{PREFIX} {guess[0]}`?" if guess else ""
            return Reply(f"Unknown command `{verb}`.{hint}\n\n{HELP}")
        if verb == "help":
            return Reply(HELP)
        if verb == "answer" and not argument:
            return Reply(f"`{PREFIX} answer` needs the answer text after it.")
        return Command(verb, argument)
    return None
