"""Broker-held credentials: read from the controller's environment, never the sandbox's.

A credential named `admin-console` in a job comes from AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE,
written `user:password@https://origin`, bound to that one origin. How it logs in is
policy's: `credentials.admin-console.form` names the login form the broker fills in;
without one, it is HTTP auth.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.core.errors import AgentplaneError
from bot.core.policy import Policy
from bot.families.browser.driver import BrowserCredential


class CredentialError(AgentplaneError):
    pass


def env_name(name: str) -> str:
    return "AGENTPLANE_CREDENTIAL_" + name.upper().replace("-", "_").replace(".", "_")


def browser_credential(
    name: str, environ: Mapping[str, str], policy: Policy | None = None
) -> BrowserCredential:
    var = env_name(name)
    raw = environ.get(var)
    if not raw:
        raise CredentialError(f"credential {name!r} is granted but ${var} is not set on this host")
    userinfo, sep, origin = raw.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not sep or not colon or not origin.startswith(("http://", "https://")):
        raise CredentialError(f"${var} must look like user:password@https://origin")
    entry = policy.credentials.get(name) if policy is not None else None
    form = entry.form if entry is not None else None
    return BrowserCredential(
        name=name,
        username=user,
        password=password,
        origin=origin,
        form=form,
        form_rule=policy.rule(f"credentials.{name}.form") if policy and form else "",
    )
