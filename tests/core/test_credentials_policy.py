"""Policy's `credentials:` section: how each broker credential logs in, checked and located."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.core.errors import ValidationFailed
from bot.core.policy import FormLogin, merge_policy
from bot.families.browser.login import succeeded

README = Path(__file__).parents[2] / "README.md"


def test_the_readme_s_form_login_is_valid_policy() -> None:
    (block,) = re.findall(r"```yaml\n(\s*credentials:\n.*?)```", README.read_text(), re.S)
    lines = block.splitlines()
    indent = len(lines[0]) - len(lines[0].lstrip())
    policy = merge_policy([("policies/c.yaml", "\n".join(line[indent:] for line in lines))])
    form = policy.credentials["django-admin"].form
    assert form is not None and form.url == "/admin/login/"
    assert (
        policy.rule("credentials.django-admin.form")
        == "policies/c.yaml#credentials.django-admin.form"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("url: https://evil.example/login", "a path on the credential's origin"),
        ("url: //evil.example/login", "a path on the credential's origin"),
        ("submit: {role: button}", "name the element with label, role and name, or selector"),
        ("success: {}", "say how success shows"),
    ],
)
def test_a_bad_form_login_is_a_located_error(entry: str, message: str) -> None:
    key = entry.split(":")[0]
    base = {
        "url": "url: /login",
        "username": "username: {label: User}",
        "password": "password: {label: Password}",
        "submit": "submit: {role: button, name: Log in}",
        "success": "success: {url: /home}",
    }
    base[key] = entry
    text = "credentials:\n  console:\n    form:\n" + "".join(f"      {v}\n" for v in base.values())
    with pytest.raises(ValidationFailed) as err:
        merge_policy([("policies/c.yaml", text)])
    (error,) = err.value.errors
    assert error.path.startswith("policies/c.yaml") and message in error.message
    assert error.field.startswith("credentials.console.form")


def test_success_is_the_landing_path_and_text_policy_names() -> None:
    form = FormLogin.model_validate(
        {
            "url": "/login",
            "username": {"label": "U"},
            "password": {"label": "P"},
            "submit": {"selector": "button"},
            "success": {"url": "/admin/*", "text": "Site administration"},
        }
    )
    assert succeeded(form, "http://c/admin/", "Site administration") == []
    assert succeeded(form, "http://c/admin/login/?next=/admin/", "Log in") == [
        "the page does not show 'Site administration'"
    ]
    assert succeeded(form, "http://c/login", "Site administration") == [
        "it landed on /login, not on '/admin/*'"
    ]
