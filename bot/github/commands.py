"""Comment commands: a pure parser from comment text to a Command or a Reply.

Only lines starting with `/agentplane` count; anything else in the comment is
conversation. Authorisation is not decided here: the commenter's role is
checked against policy where the command is executed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

PREFIX = "/agentplane"
VERBS = {
    "plan": "show the plan for the jobs in this PR",
    "apply": "apply the approved proposal now (re-checks the head SHA and the approval)",
    "rerun": "run the jobs again on the current head",
    "cancel": "cancel the open runs of this PR",
    "answer": "answer the agent's question: /agentplane answer <text>",
    "help": "show this help",
}
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


def parse_comment(body: str) -> Command | Reply | None:
    """The first `/agentplane` line decides; None when the comment holds no command."""
    for raw in body.splitlines():
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
