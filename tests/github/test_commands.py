from bot.github.commands import Command, Reply, parse_comment


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
