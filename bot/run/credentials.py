"""Broker-held credentials now live with the browser family that uses them
(bot.families.browser.credentials); this name is kept for existing imports."""

from __future__ import annotations

from bot.families.browser.credentials import CredentialError, browser_credential, env_name

__all__ = ["CredentialError", "browser_credential", "env_name"]
