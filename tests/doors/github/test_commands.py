import pytest

from bot.doors.github.commands import Command, Reply, parse_comment


def test_plain_conversation_is_not_a_command() -> None:
    assert parse_comment("looks good to me") is None
    assert parse_comment("/agentplanes plan") is None


def test_verbs_and_arguments() -> None:
    assert parse_comment("/agentplane plan") == Command("plan")
    assert parse_comment("thanks!\n  /agentplane answer use the v2 API\n") == Command(
        "answer", "use the v2 API"
    )
    assert parse_comment("/agentplane APPLY") == Command("apply")


def test_unknown_verb_gets_did_you_mean() -> None:
    reply = parse_comment("/agentplane aply")
    assert isinstance(reply, Reply) and "Did you mean `/agentplane apply`?" in reply.text


def test_help_and_bare_prefix() -> None:
    for text in ("/agentplane help", "/agentplane"):
        reply = parse_comment(text)
        assert isinstance(reply, Reply) and "/agentplane rerun" in reply.text


def test_answer_needs_text() -> None:
    reply = parse_comment("/agentplane answer")
    assert isinstance(reply, Reply) and "needs the answer text" in reply.text


@pytest.mark.parametrize(
    "body",
    [
        "```\n/agentplane cancel\n```",
        "~~~text\n/agentplane cancel\n~~~",
        "look:\n\n    /agentplane cancel\n",
        "> /agentplane cancel",
        "> quoted\n/agentplane cancel",  # a lazy continuation line still belongs to the quote
        "`/agentplane cancel`",
        "see `this\n/agentplane cancel` for how",  # inline code across a line break
        "- /agentplane cancel",
        "<details>\n/agentplane cancel\n</details>",
        "| a |\n| - |\n/agentplane cancel",  # a table row, on GitHub
        "# /agentplane cancel",
    ],
)
def test_commands_shown_or_quoted_do_not_run(body: str) -> None:
    assert parse_comment(body) is None


def test_a_plain_line_after_code_still_commands() -> None:
    body = "```\n/agentplane cancel\n```\n\nthen:\n/agentplane answer use `v2` *now*"
    assert parse_comment(body) == Command("answer", "use `v2` now")


def test_a_huge_comment_is_read_only_up_to_githubs_limit() -> None:
    assert parse_comment("x" * 70000 + "\n\n/agentplane cancel") is None
