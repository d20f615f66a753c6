"""litellm's own log lines, through the project's logging instead of straight to stderr.

litellm attaches a stream handler to its loggers at import, so its ERROR and WARNING
lines reach the terminal past every handler and filter the project installs (the
redactor's among them). They are re-emitted as `agentplane.model.litellm` records:
whatever a door configures for `agentplane` (and `redact_logs`) applies to them.
"""

from __future__ import annotations

import logging

LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
TARGET = "agentplane.model.litellm"


class _Forward(logging.Handler):
    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        if self.target.isEnabledFor(record.levelno):
            self.target.handle(record)  # the target's filters (redaction) run, then its handlers


def route_litellm_logs() -> None:
    """Idempotent: litellm's handlers are replaced by one that forwards to TARGET."""
    target = logging.getLogger(TARGET)
    if not any(isinstance(h, logging.NullHandler) for h in target.handlers):
        # A library's logger: silent unless the application configures logging (no
        # last-resort print to stderr), as the logging HOWTO asks of libraries.
        target.addHandler(logging.NullHandler())
    for name in LITELLM_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.addHandler(_Forward(target))
        logger.propagate = False  # once, through TARGET, not again through the root
