"""Generated comments (hypothesis, seeded): the command parser answers each with a Command,
a Reply or nothing, never an exception, and a command is only ever a known verb."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.doors.github.commands import MAX_COMMENT, VERBS, Command, Reply, parse_comment
from tests.support.fuzzing import SEEDED, Figures

PIECES = [
    "/agentplane", "/agentplane ", "/AGENTPLANE", " plan", " apply", " answer ", " help",
    " rerun", " cancel", " plna", "\n", "\r\n", "\n\n", "    ", "\t", "`", "```", "~~~", "> ",
    "- ", "1. ", "| a | b |\n|---|---|\n", "<details>", "</details>", "<!--", "-->", "**",
    "_", "[x](y)", "\\", "&nbsp;", "\u200b", "\u2028", "\x00", "#", "---", "===", "*" * 50,
    "[" * 200, "<" * 100, "`" * 100,
]  # fmt: skip

comments = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
    st.text(max_size=500),
    st.lists(st.sampled_from(PIECES) | st.text(max_size=20), max_size=30).map("".join),
)


@pytest.fixture(scope="module")
def figures(pytestconfig: pytest.Config) -> Iterator[Figures]:
    fig = Figures("comment commands", refusal="answered with a reply")
    yield fig
    fig.report(pytestconfig)


@settings(SEEDED, max_examples=300)
@given(body=comments)
def test_generated_comments_parse_to_a_command_a_reply_or_nothing(
    figures: Figures, body: str
) -> None:
    with figures.case():
        parsed = parse_comment(body)
    assert parsed is None or isinstance(parsed, Command | Reply)
    if isinstance(parsed, Command):
        figures.accepted += 1
        assert parsed.verb in VERBS and parsed.verb != "help"
        assert "/agentplane" in body.lower()
    elif isinstance(parsed, Reply):
        figures.rejected += 1
        assert parsed.text.strip()


@pytest.mark.parametrize(
    "body",
    [
        "/agentplane " + "x" * (MAX_COMMENT * 2),
        "[" * MAX_COMMENT,
        "*a " * (MAX_COMMENT // 3),
        "> " * (MAX_COMMENT // 2) + "/agentplane plan",
        "- " * (MAX_COMMENT // 2) + "/agentplane plan",
    ],
)
def test_comments_at_githubs_size_limit_are_judged(body: str) -> None:
    parsed = parse_comment(body)
    assert parsed is None or isinstance(parsed, Reply)
