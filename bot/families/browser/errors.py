"""Typed browser errors: each one is something a user or reviewer can act on."""

from __future__ import annotations

from bot.core.errors import AgentplaneError


class BrowserError(AgentplaneError):
    """The browser tool could not do what was asked."""


class BrowserUnavailable(BrowserError):
    """No Chromium to launch (see AGENTPLANE_CHROMIUM), or it would not start."""


class NotABrowserRun(BrowserError):
    """The run recorded no browser session, so there is nothing to replay or export."""


class ReplayDiffers(BrowserError):
    """At apply, the page or the request is not what was approved; nothing was released."""

    def __init__(self, differences: list[str], artifacts: dict[str, bytes] | None = None) -> None:
        self.differences = differences
        self.artifacts = artifacts or {}
        """apply-trace.zip, apply-browser.har and apply-differs.png: what apply saw."""
        super().__init__(
            "the page differs from what was approved; nothing was submitted:\n"
            + "\n".join(f"  - {d}" for d in differences)
        )


class ReleaseFailed(BrowserError):
    """The approved request was released but did not complete (network error, no response)."""


class ReleaseRedirected(ReleaseFailed):
    """The released request was answered 307 or 308: following it would send the approved
    body again, to a URL nobody approved, so apply stopped there."""
