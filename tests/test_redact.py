from bot.redact import MASK, Redactor


def test_known_values_and_token_shapes_are_masked() -> None:
    r = Redactor(["hunter22", None, "ab"])
    text = (
        "pw hunter22 token ghs_" + "a" * 36 + " url https://x-access-token:tok3n@github.com/o/r"
        " key -----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY-----"
    )
    out = r(text)
    assert "hunter22" not in out and "ghs_" not in out and "tok3n" not in out and "MII" not in out
    assert out.count(MASK) == 4
    assert r("ab stays: too short to be a secret") == "ab stays: too short to be a secret"
