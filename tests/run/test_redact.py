import logging
import time
from pathlib import Path

import pytest

from bot.core.policy import merge_policy
from bot.run.redact import MASK, Redactor, redact_logs

GH = "ghs_" + "a1B2" * 9
AWS_ID = "AKIA" + "IOSFODNN7EXAMPLQ"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"


def test_known_values_and_token_shapes_are_masked() -> None:
    r = Redactor(["hunter22", None, "ab"])
    text = f"pw hunter22 token {GH} url https://x-access-token:tok3n@github.com/o/r key {PEM} after"
    out = r(text)
    assert "hunter22" not in out and "a1B2" not in out and "tok3n" not in out
    assert "MIIE" not in out and "END RSA" not in out
    assert out.endswith(" after") and "https://x-access-token:" in out  # only the secret goes
    assert r("ab stays: too short to be a secret") == "ab stays: too short to be a secret"


@pytest.mark.parametrize(
    "token",
    [
        AWS_ID,
        f'aws_secret_access_key = "{AWS_SECRET}"',
        "xoxb-1234567890-abcdefghij",
        "sk_live_" + "a" * 24,
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
        "github_pat_" + "A1b2" * 10,
        "glpat-" + "x" * 20,
    ],
)
def test_detect_secrets_formats_are_masked(token: str) -> None:
    out = Redactor()(f"x {token} y")
    assert MASK in out and out.startswith("x ") and out.endswith(" y")
    assert Redactor().token_kinds(token)


def test_for_host_knows_every_secret_the_host_holds(tmp_path: Path) -> None:
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text("postgresql://ro:filepw99@db/x\n")
    policy = merge_policy(
        [
            (
                "policies/p.yaml",
                "models:\n  model_list:\n  - model_name: m\n    litellm_params:\n"
                "      model: openai/x\n      api_key: os.environ/MODEL_K\n"
                "sql_connections:\n  replica: {dsn_env: MY_DSN}\n"
                f"  other: {{secrets_file: {dsn_file}}}\n",
            )
        ]
    )
    env = {
        "AGENTPLANE_CREDENTIAL_ADMIN": "admin:credpw77@https://admin.example",
        "AGENTPLANE_WEBHOOK_SECRET": "hook-one,hook-two",
        "AGENTPLANE_GITHUB_TOKEN": "tok-abcdef",
        "MODEL_K": "mk-12345",
        "MY_DSN": "postgresql://ro:dsnpw55@db/x",
        "AGENTPLANE_SQL_EXTRA_DSN": "host=db password=envpw33",
        "SOME_SERVICE_API_KEY": "guessed-key-1",
        "HOME": "/root",
    }
    r = Redactor.for_host(env, ["app-key-text"], policy)
    for secret in (
        "credpw77",
        "admin:credpw77@https://admin.example",
        "hook-one",
        "hook-two",
        "tok-abcdef",
        "mk-12345",
        "dsnpw55",
        "envpw33",
        "filepw99",
        "guessed-key-1",
        "app-key-text",
    ):
        assert r.knows(f"a {secret} b"), secret
        assert secret not in r(f"a {secret} b")
    assert not r.knows("/root") and r("/root") == "/root"


def test_json_redacts_strings_and_keeps_digests_and_structure() -> None:
    r = Redactor(["hunter22"])
    digest = "sha256:" + "ab" * 32
    rec = {"n": 3, "sha256": digest, "calls": [{"hunter22": f"said hunter22 and {GH}"}], "ok": True}
    out = r.json(rec)
    assert out == {
        "n": 3,
        "sha256": digest,
        "calls": [{MASK: f"said {MASK} and {MASK}"}],
        "ok": True,
    }


def test_logs_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("agentplane.test-redact")
    redact_logs(Redactor(["hunter22"]))
    with caplog.at_level(logging.INFO, logger="agentplane.test-redact"):
        log.info("token %s and %s", "hunter22", GH)
        try:
            raise ValueError("boom hunter22")
        except ValueError:
            log.exception("failed")
    assert "hunter22" not in caplog.text and GH not in caplog.text
    assert f"token {MASK} and {MASK}" in caplog.text and "boom" in caplog.text


def test_redaction_is_fast_enough_for_every_record_append() -> None:
    r = Redactor.for_host({"AGENTPLANE_CREDENTIAL_X": "u:pw123456@https://x"})
    record = {
        "tool_calls": [
            {"seq": i, "tool": "shell", "result": "ran the tests: OK " * 20, "sha": "0" * 64}
            for i in range(200)
        ]
    }
    r.json(record)  # patterns compile once
    started = time.perf_counter()
    r.json(record)
    assert time.perf_counter() - started < 0.25  # ~10 ms measured; a loose bound for CI


def test_zip_artifacts_have_known_secrets_masked_in_text_members(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A Playwright trace is a zip: a page that showed a model key leaves it in the network
    # log; the picture stays as it is and the archive still opens.
    import io
    import zipfile

    from bot.run import redact
    from bot.run.redact import RedactionError

    key = "sk-model-key-0123456789"
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("trace.network", f'{{"body": "{key}"}}\n')
        z.writestr("resources/shot.png", b"\x89PNG\r\n\x1a\n\xff\xfe" + key.encode())
    masked = Redactor([key]).zip(raw.getvalue())
    with zipfile.ZipFile(io.BytesIO(masked)) as z:
        assert key not in z.read("trace.network").decode()
        assert MASK in z.read("trace.network").decode()
        assert z.read("resources/shot.png").startswith(b"\x89PNG")  # binary: never decoded
    monkeypatch.setattr(redact, "MAX_ZIP_UNPACKED", 4096)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a", b"\0" * 4097)
    with pytest.raises(RedactionError, match="cannot be checked for secrets"):
        Redactor([key]).zip(bomb.getvalue())


def test_a_credential_s_password_is_masked_as_a_form_body_url_and_page_spell_it() -> None:
    pw = "pw~!& x<y>"
    redact = Redactor.for_host({"AGENTPLANE_CREDENTIAL_CONSOLE": f"admin:{pw}@http://c.test"})
    spelled = (
        "username=admin&password=pw%7E%21%26+x%3Cy%3E",  # Chromium's form body
        "next=pw~%21%26%20x%3Cy%3E",  # a URL's query
        "<input value='pw~!&amp; x&lt;y&gt;'>",  # a page's HTML
    )
    for text in spelled:
        assert MASK in redact(text), text
        assert "x%3Cy" not in redact(text) and "x&lt;y" not in redact(text)
