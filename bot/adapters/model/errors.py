"""Typed model errors: every way a model call can fail, each with an actionable message.

Imported without litellm (see turn.py): the agent loop and the engine catch these by
type, and their text has already had every model key the adapter knows masked out.
"""

from __future__ import annotations

from bot.core.errors import AgentplaneError


class ModelError(AgentplaneError):
    """The model could not be reached or answered nonsense."""


class ModelUnavailable(ModelError):
    """No deployment of the group (or of a fallback it may take) answered: HTTP errors,
    refused keys, connection failures, after litellm's retries."""


class ModelTimedOut(ModelError):
    """The call was cancelled in flight at its deadline."""

    def __init__(self, message: str, seconds: float, budget: bool) -> None:
        super().__init__(message)
        self.seconds = seconds
        self.budget = budget
        """True when the deadline was what the run's minutes budget had left."""


class ModelResponseError(ModelError):
    """An answer of a shape no agent can act on (no choices, a tool call without a name...)."""


class ModelBudgetError(ModelError):
    """What the run's budget has left cannot pay for the next call."""


class ModelCostUnknown(ModelError):
    """Policy refuses unknown-cost models for jobs with a usd budget, and this one is."""
